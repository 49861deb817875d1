package mailsec

import (
	"testing"
	"unicode/utf8"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"250 mx.test ESMTP\tok":       "250 mx.test ESMTP\tok",
		"554 \x1b]0;pwned\x07\x1b[2J": `554 \x1b]0;pwned\x07\x1b[2J`,
		"a\x00b\x7fc":                 `a\x00b\x7fc`,
		"raw CSI \x9b2J, C1 \u009b2J": `raw CSI \x9b2J, C1 \u009b2J`,
		"Grüße, 日本":                   "Grüße, 日本",
		"bad \xff\xfe":                `bad \xff\xfe`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzPrintable checks that nothing a terminal acts on survives, and that
// text without such characters comes out unchanged.
func FuzzPrintable(f *testing.F) {
	for _, s := range []string{"250 ok", "\x1b[2J", "\x9b", "Grüße\u009b", "\xff", "\t"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Printable(s)
		if !utf8.ValidString(out) {
			t.Fatalf("%q: invalid UTF-8 out: %q", s, out)
		}
		clean := true
		for _, r := range out {
			if unsafeRune(r) {
				t.Fatalf("%q: %U survives in %q", s, r, out)
			}
		}
		for _, r := range s {
			clean = clean && !unsafeRune(r)
		}
		if clean && out != s {
			t.Fatalf("clean %q changed to %q", s, out)
		}
	})
}

// An error carrying a server's reply is safe to print as it is: library
// users log err.Error() without the CLI's escaping.
func TestErrorTextIsPrintable(t *testing.T) {
	err := &Error{Code: SMTPServer, Op: "RCPT", Reply: &Reply{Code: 550, Lines: []string{"no \x1b]0;pwned\x07 such user"}}}
	if got, want := err.Error(), `RCPT: the SMTP server reported an error: server said 550 no \x1b]0;pwned\x07 such user`; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
}
