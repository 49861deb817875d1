package smtpd

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"
)

// captureBackend keeps the envelopes it is given; its RelayRule says who
// may relay.
type captureBackend struct {
	RelayRule
	mu   sync.Mutex
	envs []*Envelope
}

func (b *captureBackend) Deliver(_ context.Context, env *Envelope, msg io.Reader) error {
	if _, err := io.Copy(io.Discard, msg); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.envs = append(b.envs, env)
	return nil
}

// An authenticated submitter may relay; the MX listener never relays, not
// even when the server relays for its users, and address literals are
// refused so the relay cannot be aimed at an arbitrary address.
func TestRelayOnlyForAuthenticatedSubmitters(t *testing.T) {
	be := &captureBackend{RelayRule: RelayRule{Submitters: true}}
	e := startServer(t, func(s *Server) { s.Backend = be })

	mx := e.dial(MX)
	mx.cmd("EHLO client.test", 250)
	mx.starttls()
	mx.cmd("EHLO client.test", 250)
	mx.cmd("MAIL FROM:<x@y.test>", 250)
	mx.cmd("RCPT TO:<someone@elsewhere.test>", 550)

	c := e.submitter(Submission, "client.test")
	c.cmd("MAIL FROM:<alice@localhost> RET=HDRS ENVID=q+2Bid BODY=8BITMIME", 250)
	c.cmd("RCPT TO:<carol@elsewhere.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;carol@elsewhere.test", 250)
	c.cmd("RCPT TO:<bob@localhost>", 250)
	c.cmd("RCPT TO:<dave@[127.0.0.1]>", 553)
	c.cmd("RCPT TO:<x@elsewhere.test> ORCPT=rfc822;a=b", 501) // "=" is not xtext (RFC 3461 section 4)
	c.cmd("DATA", 354)
	c.cmd("Subject: t\r\n\r\nhi\r\n.", 250)

	if len(be.envs) != 1 {
		t.Fatalf("backend got %d messages", len(be.envs))
	}
	env := be.envs[0]
	if !env.Relayed() || len(env.Rcpts) != 2 || env.AuthUser != "alice" {
		t.Fatalf("envelope %+v", env)
	}
	want := Rcpt{Addr: "carol@elsewhere.test", Notify: "FAILURE,DELAY", ORcpt: "rfc822;carol@elsewhere.test"}
	if env.Rcpts[0] != want || env.Rcpts[1].Mailbox != "bob" {
		t.Errorf("recipients %+v", env.Rcpts)
	}
	if env.Ret != "HDRS" || env.EnvID != "q+2Bid" || env.Body != "8BITMIME" {
		t.Errorf("MAIL parameters not kept: %+v", env)
	}
}

// Without RelayRule.Submitters an authenticated user still cannot relay;
// RelayRule.Networks trusts a client address explicitly, on any listener.
func TestRelayNetworks(t *testing.T) {
	be := &captureBackend{}
	e := startServer(t, func(s *Server) { s.Backend = be })
	c := e.submitter(Submission, "client.test")
	c.cmd("MAIL FROM:<alice@localhost>", 250)
	c.cmd("RCPT TO:<carol@elsewhere.test>", 550)

	be2 := &captureBackend{RelayRule: RelayRule{Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	e2 := startServer(t, func(s *Server) { s.Backend = be2 })
	mx := e2.dial(MX)
	mx.cmd("EHLO client.test", 250)
	mx.cmd("MAIL FROM:<app@localhost>", 250)
	mx.cmd("RCPT TO:<carol@elsewhere.test>", 250)
}

// REQUIRETLS (RFC 8689) is offered and accepted under TLS only, and kept
// in the envelope.
func TestRequireTLSParameter(t *testing.T) {
	be := &captureBackend{}
	e := startServer(t, func(s *Server) { s.Backend = be })
	c := e.dial(MX)
	if ehlo := c.cmd("EHLO client.test", 250); strings.Contains(ehlo, "REQUIRETLS") {
		t.Errorf("REQUIRETLS offered in plain text: %q", ehlo)
	}
	c.cmd("MAIL FROM:<x@y.test> REQUIRETLS", 530)
	c.starttls()
	if ehlo := c.cmd("EHLO client.test", 250); !strings.Contains(ehlo, "REQUIRETLS") {
		t.Errorf("REQUIRETLS not offered under TLS: %q", ehlo)
	}
	c.cmd("MAIL FROM:<x@y.test> REQUIRETLS=YES", 501)
	c.cmd("MAIL FROM:<x@y.test> REQUIRETLS", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	c.cmd("DATA", 354)
	c.cmd("Subject: t\r\n\r\nhi\r\n.", 250)
	if len(be.envs) != 1 || !be.envs[0].RequireTLS {
		t.Fatalf("envelope %+v", be.envs)
	}
}
