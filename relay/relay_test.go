package relay

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/smtpd"
)

// Negotiated TLS (Domino's outbound rule): STARTTLS when offered, and the queue record
// says what was negotiated and what the certificate would have met.
func TestMayUsesSTARTTLSWhenOffered(t *testing.T) {
	cert, pool := certFor(t, "mx1.example.test")
	d := startDest(t, "127.0.0.2", 0, cert, smtpd.MX, nil)
	e := newEnv(t, d.port(), func(o *Options) { o.RootCAs = pool })
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	id := e.submit("alice@local.test", "bob@example.test")
	got := d.wait(t, 1)
	e.gone(id)
	if !strings.Contains(got[0].body, "with ESMTPS") || !strings.Contains(got[0].body, "(using TLS") {
		t.Errorf("the destination's Received header does not show TLS:\n%s", got[0].body)
	}
	if !strings.HasSuffix(got[0].body, "\r\n\r\nhello\r\n") || got[0].env.From != "alice@local.test" {
		t.Errorf("message or envelope changed: %+v %q", got[0].env, got[0].body)
	}
}

// Without STARTTLS, may delivers in plain text; encrypt and verify defer
// and name the reason.
func TestNoSTARTTLS(t *testing.T) {
	d := startDest(t, "127.0.0.2", 0, nil, smtpd.MX, nil)
	e := newEnv(t, d.port(), func(o *Options) {
		o.Routes = []Route{{Domain: "enc.test", Policy: Encrypt}, {Domain: "ver.test", Policy: Verify}}
	})
	for _, dom := range []string{"example.test", "enc.test", "ver.test"} {
		e.mx(dom, 10, "mx1."+dom, "127.0.0.2")
	}
	plain := e.submit("alice@local.test", "bob@example.test")
	d.wait(t, 1)
	e.gone(plain)
	if b := d.sink.all()[0].body; !strings.Contains(b, "with ESMTP id") {
		t.Errorf("expected a plain-text delivery:\n%s", b)
	}
	for _, dom := range []string{"enc.test", "ver.test"} {
		id := e.submit("alice@local.test", "bob@"+dom)
		en := e.deferred(id)
		o := en.Recipients[0].Last
		if en.Recipients[0].Status != queue.Pending || o == nil || o.Code != "StartTLSUnavailable" || !strings.Contains(o.Detail, "does not offer STARTTLS") {
			t.Errorf("%s: %+v %+v", dom, en.Recipients[0], o)
		}
	}
	if n := len(d.sink.all()); n != 1 {
		t.Errorf("%d messages reached the destination without TLS, want 1 (the may one)", n)
	}
}

// The verdict recorded under may and encrypt is what verify would have
// said of the same certificate.
func TestVerdict(t *testing.T) {
	cert, pool := certFor(t, "mx1.example.test")
	st := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{cert.Leaf}}
	for _, tc := range []struct {
		name  string
		roots *x509.CertPool
		want  string
	}{
		{"mx1.example.test", pool, "verified"},
		{"mx2.example.test", pool, "name-mismatch"},
		{"mx1.example.test", x509.NewCertPool(), "untrusted"},
	} {
		if got := verdict(st, tc.name, tc.roots); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	if got := verdict(nil, "x", pool); got != "" {
		t.Errorf("plain text: %q", got)
	}
}
