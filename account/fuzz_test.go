package account

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
)

// FuzzParse: whatever the file holds, parsing and resolving every account
// ends in an account or in a Config error naming a line, never a panic.
func FuzzParse(f *testing.F) {
	f.Add(msmtprc)
	for _, s := range []string{"account a\nhost \"h\\\"x\"\n", "defaults\ntls on\naccount b : a\n", "account a\nport 0\n", "account\t a\n\"", "account a : a\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		file, err := parse("f", strings.NewReader(text))
		if err != nil {
			if !errors.Is(err, mailsec.Config) || !strings.Contains(err.Error(), "f:") {
				t.Fatalf("error %v is not a Config error naming the line", err)
			}
			return
		}
		for _, name := range file.Names() {
			a, err := file.Account(name)
			if err != nil {
				if !errors.Is(err, mailsec.Config) {
					t.Fatalf("account %q: %v", name, err)
				}
				continue
			}
			if a.Port < 0 || a.Port > 65535 {
				t.Fatalf("port %d accepted", a.Port)
			}
		}
	})
}
