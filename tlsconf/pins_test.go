package tlsconf_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/tlsconf"
)

func TestPins(t *testing.T) {
	p := newPKI(t)
	c := p.leaf(p.inter, nil, nil)
	other := p.leaf(p.inter, nil, nil)
	addr := tlsServer(t, c, nil)
	spki := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
	cert := sha256.Sum256(c.Leaf.Raw)
	otherSum := sha256.Sum256(other.Leaf.Raw)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		pins []string
		ok   bool
	}{
		{"spki", []string{"sha256:" + base64.StdEncoding.EncodeToString(spki[:])}, true},
		{"msmtp fingerprint", []string{tlsconf.Fingerprint(cert[:])}, true},
		{"lower-case hex without colons", []string{"sha256:" + strings.ToLower(strings.ReplaceAll(tlsconf.Fingerprint(cert[:]), ":", ""))}, true},
		{"one of several", []string{tlsconf.Fingerprint(otherSum[:]), tlsconf.Fingerprint(cert[:])}, true},
		{"another certificate", []string{tlsconf.Fingerprint(otherSum[:])}, false},
	} {
		facts, err := handshake(ctx, t, addr, tlsconf.Options{RootCAs: p.roots, Pins: tc.pins,
			Revocation: tlsconf.Revocation{Mode: tlsconf.RevocationOff}})
		switch {
		case tc.ok && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.ok && facts.Chain[0].Fingerprint != tlsconf.Fingerprint(cert[:]):
			t.Errorf("%s: facts fingerprint %s", tc.name, facts.Chain[0].Fingerprint)
		case !tc.ok && (!errors.Is(err, mailsec.TLSCertificate) || !strings.Contains(err.Error(), tlsconf.Fingerprint(cert[:]))):
			t.Errorf("%s: err = %v, want a TLSCertificate error naming the fingerprint", tc.name, err)
		}
	}
}

func TestParsePin(t *testing.T) {
	sum := sha256.Sum256([]byte("x"))
	for _, s := range []string{"sha256:" + base64.StdEncoding.EncodeToString(sum[:]), tlsconf.Fingerprint(sum[:])} {
		pin, err := tlsconf.ParsePin(s)
		if err != nil || pin.Sum != sum || pin.String() != s {
			t.Errorf("ParsePin(%q) = %v, %v; want it back", s, pin, err)
		}
	}
	for _, s := range []string{"", base64.StdEncoding.EncodeToString(sum[:]), "sha256:AAAA", tlsconf.Fingerprint(sum[:16]), "md5:" + tlsconf.Fingerprint(sum[:])} {
		if _, err := tlsconf.ParsePin(s); !errors.Is(err, mailsec.Config) {
			t.Errorf("ParsePin(%q) = %v, want a Config error", s, err)
		}
	}
}

func FuzzParsePin(f *testing.F) {
	f.Add("sha256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
	f.Add("AB:CD")
	f.Fuzz(func(t *testing.T, s string) {
		pin, err := tlsconf.ParsePin(s)
		if err != nil {
			return
		}
		again, err := tlsconf.ParsePin(pin.String())
		if err != nil || again != pin {
			t.Errorf("ParsePin(%q) = %v; its String %q reads back as %v, %v", s, pin, pin.String(), again, err)
		}
	})
}
