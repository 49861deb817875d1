package account

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
)

// An msmtprc of the shape msmtp's manual teaches: defaults, accounts that
// inherit, and a default account.
const msmtprc = `# Set default values for all following accounts.
defaults
tls            on
tls_trust_file /etc/ssl/certs/ca-certificates.crt
timeout        30
logfile        ~/.msmtp.log

# A freemail service
account        freemail
host           smtp.freemail.example
port           587
from           joe_smith@freemail.example
auth           on
user           joe.smith
passwordeval   "gpg --no-tty -q -d ~/.msmtp-password.gpg"

# A second mail address at the same freemail service
account        freemail2 : freemail
from           joey@freemail.example

# The SMTP server of the provider, over implicit TLS.
account	       provider
host	       mail.provider.example
port           465
tls_starttls   off
auth	       scram-sha-256
user	       "joe"   # trailing comment
password       "s3cr\"et\\x # not a comment"

# Set a default account
account default : freemail
`

func write(t *testing.T, text string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(p, []byte(text), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestMsmtprc(t *testing.T) {
	p := write(t, msmtprc, 0o600)
	f, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := f.Names(), []string{"freemail", "freemail2", "provider", "default"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
	a, err := f.Account("freemail2")
	if err != nil {
		t.Fatal(err)
	}
	if a.Host != "smtp.freemail.example" || a.Port != 587 || a.From != "joey@freemail.example" ||
		a.Auth != "auto" || a.User != "joe.smith" || a.PasswordEval != "gpg --no-tty -q -d ~/.msmtp-password.gpg" ||
		a.TLS != "starttls" || a.CAFile != "/etc/ssl/certs/ca-certificates.crt" || a.Timeout != 30*time.Second {
		t.Errorf("freemail2 = %+v", a)
	}
	if len(a.Ignored) != 1 || !strings.HasPrefix(a.Ignored[0], "logfile ("+p+":6)") {
		t.Errorf("Ignored = %q, want logfile at line 6", a.Ignored)
	}
	a, err = f.Account("provider")
	if err != nil {
		t.Fatal(err)
	}
	if a.TLS != "implicit" || a.Port != 465 || a.Auth != "scram-sha-256" || a.User != "joe" || a.Password != `s3cr"et\x # not a comment` {
		t.Errorf("provider = %+v", a)
	}
	a, err = f.Account("")
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "default" || a.From != "joe_smith@freemail.example" || a.Host != "smtp.freemail.example" {
		t.Errorf("default account = %+v", a)
	}
}

func TestTLSModes(t *testing.T) {
	for _, c := range []struct{ settings, want string }{
		{"", ""}, // mailsec's own default applies
		{"tls off", "none"},
		{"tls on", "starttls"},
		{"tls", "starttls"},
		{"tls on\ntls_starttls on", "starttls"},
		{"tls on\ntls_starttls off", "implicit"},
		{"tls_starttls off", "implicit"},
		{"tls starttls-optional", "starttls-optional"},
		{"tls implicit", "implicit"},
		{"tls off\ntls on", "starttls"},
	} {
		f, err := parse("t", strings.NewReader("account a\nhost h\n"+c.settings+"\n"))
		if err != nil {
			t.Fatalf("%q: %v", c.settings, err)
		}
		a, err := f.Account("a")
		if err != nil {
			t.Fatalf("%q: %v", c.settings, err)
		}
		if a.TLS != c.want {
			t.Errorf("%q: TLS = %q, want %q", c.settings, a.TLS, c.want)
		}
	}
}

func TestSettings(t *testing.T) {
	f, err := parse("t", strings.NewReader(`account a
proxy_port 9050
proxy_host 127.0.0.1
tls_fingerprint 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:aa:bb:cc:dd:ee:ff
pin sha256:AAAA
revocation leaf
tls_min 1.3
tls_certcheck off
tls_host_override mail.example
domain client.example
auth off
timeout off
`))
	if err != nil {
		t.Fatal(err)
	}
	a, err := f.Account("a")
	if err != nil {
		t.Fatal(err)
	}
	if a.Proxy != "socks5://127.0.0.1:9050" || len(a.Fingerprints) != 1 || !reflect.DeepEqual(a.Pins, []string{"sha256:AAAA"}) ||
		a.Revocation != "leaf" || a.TLSMin != "1.3" || !a.NoCertCheck || a.ServerName != "mail.example" ||
		a.Domain != "client.example" || a.Auth != "none" || a.Timeout != 0 {
		t.Errorf("a = %+v", a)
	}
}

func TestBadFiles(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"host x\n", "t:1: setting \"host\" outside any account"},
		{"account a\nhots x\n", "t:2: unknown setting \"hots\""},
		{"account a\naccount a\n", "t:2: account \"a\" is defined twice"},
		{"account a : b\n", "t:1: account \"a\" inherits from \"b\""},
		{"account a\nport 70000\n", "t:2: port \"70000\""},
		{"account a\nport\n", "t:2: port \"\""},
		{"account\n", "t:1: account needs one name"},
		{"account a b\n", "t:1: account needs one name"},
		{"account a\nuser \"joe\n", "t:2: the quoted value of \"user\" has no closing quote"},
		{"account a\nuser \"joe\" smith\n", "t:2: text after the quoted value"},
		{"account a\nuser \"joe\\", "t:2: unfinished escape"},
		{"account a\neval echo host evil\n", "t:2: \"eval\" is not supported"},
		{"account a\ntls_fingerprint 00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33\n", "SHA-1 and MD5 are refused"},
		{"account a\ntls maybe\n", "t:2: tls \"maybe\""},
		{"account a\ntls_starttls perhaps\n", "t:2: tls_starttls \"perhaps\""},
		{"account a\nprotocol lmtp\n", "t:2: protocol \"lmtp\""},
		{"account a\nproxy localhost:1080\n", "t:2: proxy \"localhost:1080\" is not a URL"},
		{"account a\nproxy_port 1080\n", "has proxy_port but no proxy_host"},
		{"defaults x\n", "t:1: \"defaults\" takes no value"},
		{doubling(20), "inherits more than 10000 settings"},
		{"account a\nuser " + strings.Repeat("x", maxLine) + "\n", "t:2: bufio.Scanner: token too long"},
	} {
		f, err := parse("t", strings.NewReader(c.text))
		if err == nil {
			_, err = f.Account("a")
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.40q: err = %v, want %q", c.text, err, c.want)
			continue
		}
		if !errors.Is(err, mailsec.Config) {
			t.Errorf("%.40q: code %v, want Config", c.text, mailsec.CodeOf(err))
		}
	}
}

func TestDefaultAccount(t *testing.T) {
	f, _ := parse("t", strings.NewReader("account only\nhost h\n"))
	if a, err := f.Account(""); err != nil || a.Name != "only" {
		t.Errorf("single account: %+v, %v", a, err)
	}
	f, _ = parse("t", strings.NewReader("account a\naccount b\n"))
	if _, err := f.Account(""); err == nil || !strings.Contains(err.Error(), "no default account") {
		t.Errorf("two accounts, no default: %v", err)
	}
	if _, err := f.Account("c"); err == nil || !strings.Contains(err.Error(), `no account "c" (it has: a, b)`) {
		t.Errorf("missing account: %v", err)
	}
}

func TestPasswordFilePermissions(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root reads any file, but the check is about who else can: it
		// must hold for root's own files too.
		t.Log("running as root")
	}
	withPassword := "account a\nhost h\npassword secret\n"
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o620, 0o660} {
		_, err := Load(write(t, withPassword, mode))
		if err == nil || !errors.Is(err, mailsec.Config) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("mode %04o: err = %v, want a Config error telling to chmod 600", mode, err)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("mode %04o: the error shows the password: %v", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if _, err := Load(write(t, withPassword, mode)); err != nil {
			t.Errorf("mode %04o: %v", mode, err)
		}
	}
	// Without a password, a readable file is fine (msmtp agrees).
	if _, err := Load(write(t, "account a\nhost h\npasswordeval pass show mail\n", 0o644)); err != nil {
		t.Errorf("no password, mode 0644: %v", err)
	}
	if _, err := Load(t.TempDir()); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing")); !errors.Is(err, mailsec.Config) {
		t.Errorf("missing file: %v", err)
	}
}

func TestFind(t *testing.T) {
	home, cfg := t.TempDir(), t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", cfg)
	if f, err := Find(); f != nil || err != nil {
		t.Fatalf("no files: %v, %v", f, err)
	}
	rc := filepath.Join(home, ".msmtprc")
	if err := os.WriteFile(rc, []byte("account m\nhost msmtp.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := Find(); err != nil || f.Path != rc {
		t.Fatalf("~/.msmtprc: %v, %v", f, err)
	}
	own := filepath.Join(cfg, "mailsec", "config")
	if err := os.MkdirAll(filepath.Dir(own), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(own, []byte("account s\nhost mailsec.example\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if f, err := Find(); err != nil || f.Path != own {
		t.Fatalf("own file first: %v, %v", f, err)
	}
	// A relative XDG_CONFIG_HOME is invalid per the XDG specification.
	t.Setenv("XDG_CONFIG_HOME", "relative")
	if p := Paths()[0]; p != filepath.Join(home, ".config", "mailsec", "config") {
		t.Errorf("relative XDG_CONFIG_HOME: %s", p)
	}
}

// doubling is a file whose every account inherits its predecessor twice.
func doubling(n int) string {
	var b strings.Builder
	b.WriteString("account a0\nhost h\n")
	for i := 1; i < n; i++ {
		fmt.Fprintf(&b, "account a%d : a%d, a%d\n", i, i-1, i-1)
	}
	b.WriteString("account a : a0\n")
	return b.String()
}
