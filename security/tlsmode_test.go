package security

import (
	"testing"

	"github.com/mailsec/mailsec"
)

// TestResolve checks RFC 8314 section 3.3's defaults: implicit TLS on the
// protocol's own port only, mandatory STARTTLS elsewhere, and an explicit
// mode never overridden by the port.
func TestResolve(t *testing.T) {
	for _, tc := range []struct {
		mode           TLSMode
		port, implicit int
		want           TLSMode
	}{
		{TLSDefault, 465, 465, TLSImplicit},
		{TLSDefault, 995, 995, TLSImplicit},
		{TLSDefault, 995, 465, TLSStartTLS},
		{TLSDefault, 587, 465, TLSStartTLS},
		{TLSNone, 465, 465, TLSNone},
		{TLSStartTLSOptional, 995, 995, TLSStartTLSOptional},
	} {
		if got := tc.mode.Resolve(tc.port, tc.implicit); got != tc.want {
			t.Errorf("%v.Resolve(%d, %d) = %v, want %v", tc.mode, tc.port, tc.implicit, got, tc.want)
		}
	}
}

// TestNewContext checks that only the STARTTLS modes get a TLS driver, and
// that the optional one may be skipped.
func TestNewContext(t *testing.T) {
	for _, tc := range []struct {
		mode TLSMode
		want string
	}{
		{TLSStartTLS, "STARTTLS MAND"},
		{TLSStartTLSOptional, "STARTTLS OPT"},
		{TLSImplicit, ""},
		{TLSNone, ""},
	} {
		got := ""
		for _, r := range tc.mode.NewContext().Reports() {
			got += r.Name + " " + r.Use
		}
		if got != tc.want {
			t.Errorf("mode %v: context %q, want %q", tc.mode, got, tc.want)
		}
	}
}

func TestParseTLSMode(t *testing.T) {
	for s, want := range map[string]TLSMode{"": TLSDefault, "auto": TLSDefault, "implicit": TLSImplicit,
		"starttls": TLSStartTLS, "starttls-optional": TLSStartTLSOptional, "none": TLSNone} {
		if got, err := ParseTLSMode(s); err != nil || got != want {
			t.Errorf("ParseTLSMode(%q) = %v, %v; want %v", s, got, err, want)
		}
	}
	if _, err := ParseTLSMode("ssl"); mailsec.CodeOf(err) != mailsec.Config {
		t.Errorf("ParseTLSMode(ssl): %v, want a Config error", err)
	}
}
