package tlsconf_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/tlsconf"
)

func staplingServer(t *testing.T, s *tlsconf.Stapler) string {
	return tlsServerConfig(t, &tls.Config{GetCertificate: s.GetCertificate})
}

func fixed(c tls.Certificate) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return &c, nil }
}

// A fetched response rides along with the certificate, and the client
// takes the leaf's status from it.
func TestStaplerFetch(t *testing.T) {
	p := newPKI(t)
	c := p.leaf(p.inter, p.url("/ocsp/good"), nil)
	s := tlsconf.NewStapler(fixed(c), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Fetch(ctx, &c); err != nil {
		t.Fatal(err)
	}
	facts, err := handshake(ctx, t, staplingServer(t, s), tlsconf.Options{RootCAs: p.roots,
		Revocation: tlsconf.Revocation{Mode: tlsconf.RevocationLeaf, Cache: tlsconf.NewRevocationCache(4)}})
	if err != nil {
		t.Fatal(err)
	}
	if got := facts.Revocation[0]; got.Source != tlsconf.SourceStapled || got.Status != tlsconf.StatusGood {
		t.Errorf("leaf status %+v, want good from the staple", got)
	}
}

// Without a Fetch, the first handshake starts one in the background and a
// later handshake carries the staple.
func TestStaplerBackground(t *testing.T) {
	p := newPKI(t)
	c := p.leaf(p.inter, p.url("/ocsp/good"), nil)
	addr := staplingServer(t, tlsconf.NewStapler(fixed(c), nil))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := tlsconf.Options{RootCAs: p.roots, Revocation: tlsconf.Revocation{Mode: tlsconf.RevocationLeaf, Cache: tlsconf.NewRevocationCache(4)}}
	for {
		facts, err := handshake(ctx, t, addr, opts)
		if err != nil {
			t.Fatalf("handshake while waiting for a staple: %v", err)
		}
		if facts.Revocation[0].Source == tlsconf.SourceStapled {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatal("no handshake carried a staple")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// A revoked status is stapled too, and the client refuses it.
func TestStaplerRevoked(t *testing.T) {
	p := newPKI(t)
	c := p.leaf(p.inter, p.url("/ocsp/good"), nil)
	p.revoke(c.Leaf, 1)
	s := tlsconf.NewStapler(fixed(c), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Fetch(ctx, &c); err != nil {
		t.Fatal(err)
	}
	_, err := handshake(ctx, t, staplingServer(t, s), tlsconf.Options{RootCAs: p.roots,
		Revocation: tlsconf.Revocation{Cache: tlsconf.NewRevocationCache(4)}})
	if !errors.Is(err, mailsec.TLSCertificate) || !strings.Contains(err.Error(), "stapled by the server") {
		t.Errorf("err = %v, want revoked according to the staple", err)
	}
}

// Nothing is stapled for a certificate without a responder, or when the
// responder's answer is unusable.
func TestStaplerNothingToStaple(t *testing.T) {
	p := newPKI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		want string
	}{
		{"no responder", p.leaf(p.inter, nil, nil), "names no OCSP responder"},
		{"stale", p.leaf(p.inter, p.url("/ocsp/stale"), nil), "stale"},
		{"wrong key", p.leaf(p.inter, p.url("/ocsp/wrongkey"), nil), "not signed by the issuer"},
		{"unknown", p.unknownLeaf(p.url("/ocsp/good"), nil), "does not know"},
		{"no issuer", tls.Certificate{Certificate: [][]byte{p.leaf(p.inter, p.url("/ocsp/good"), nil).Certificate[0]}}, "lacks the issuer"},
	} {
		s := tlsconf.NewStapler(fixed(tc.cert), nil)
		if err := s.Fetch(ctx, &tc.cert); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Fetch = %v, want an error saying %q", tc.name, err, tc.want)
		}
		got, err := s.GetCertificate(&tls.ClientHelloInfo{})
		if err != nil || got.OCSPStaple != nil {
			t.Errorf("%s: GetCertificate stapled %d bytes (err %v), want none", tc.name, len(got.OCSPStaple), err)
		}
	}
}
