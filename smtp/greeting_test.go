package smtp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
)

// A failed greeting says what it most likely means, keeping its code.
func TestGreetingHints(t *testing.T) {
	for _, c := range []struct {
		name, greet string
		code        mailsec.Code
		hint        string
	}{
		{"silent implicit-TLS port", "", mailsec.Timeout, "try implicit TLS"},
		{"POP3 server", "+OK Dovecot ready.\r\n", mailsec.Protocol, "this is a POP3 server"},
		{"IMAP server", "* OK [CAPABILITY IMAP4rev1] ready\r\n", mailsec.Protocol, "this is an IMAP server"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr, _, _ := wiretest.Scripted(t, func(p *wiretest.Peer) {
				p.Send(c.greet)
				p.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
				p.R.ReadByte()
			})
			_, err := Dial(context.Background(), addr, clientOpts(Options{CommandTimeout: 200 * time.Millisecond}))
			codeIs(t, err, c.code)
			if !strings.Contains(err.Error(), c.hint) {
				t.Fatalf("error %q does not say %q", err, c.hint)
			}
		})
	}
}
