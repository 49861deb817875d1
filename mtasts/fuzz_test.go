package mtasts

import (
	"strings"
	"testing"
)

// FuzzParsePolicy feeds the policy parser what a hostile policy host
// could serve: it must never panic, and what it accepts must keep the
// limits of RFC 8461 section 3.2.
func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmax_age: 604800\r\n"))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0\n"))
	f.Add([]byte("version: STSv1\nmode: testing\nmx: a\rmx: b\nmax_age: 99999999999\n"))
	f.Add([]byte("mode: enforce\nversion: STSv1\nmx: *.*.x\nmax_age: 1\nextra: value\n"))
	f.Fuzz(func(t *testing.T, text []byte) {
		p, err := ParsePolicy(text)
		if err != nil {
			return
		}
		if p.Version != Version || p.MaxAge < 0 || p.MaxAge > MaxMaxAge {
			t.Fatalf("accepted out of bounds: %+v", p)
		}
		if p.Mode != ModeEnforce && p.Mode != ModeTesting && p.Mode != ModeNone {
			t.Fatalf("accepted mode %q", p.Mode)
		}
		for _, m := range p.MX {
			if strings.ContainsAny(m, " \r\n\t") {
				t.Fatalf("accepted mx %q", m)
			}
			p.Matches(strings.TrimPrefix(m, "*."))
		}
	})
}
