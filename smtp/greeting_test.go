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
				p.Hold()
			})
			_, err := Dial(context.Background(), addr, clientOpts(Options{CommandTimeout: 200 * time.Millisecond}))
			codeIs(t, err, c.code)
			if !strings.Contains(err.Error(), c.hint) {
				t.Fatalf("error %q does not say %q", err, c.hint)
			}
		})
	}
}

// A silent port calls SlowGreeting once, after SlowGreetingAfter, while the
// wait goes on to the timeout; a server that greets at once never does.
func TestSlowGreetingHook(t *testing.T) {
	for _, greet := range []string{"", "220 mx.test ESMTP\r\n"} {
		addr, _, _ := wiretest.Scripted(t, func(p *wiretest.Peer) {
			p.Send(greet)
			p.Hold()
		})
		calls := make(chan time.Duration, 2)
		start := time.Now()
		_, err := Dial(context.Background(), addr, clientOpts(Options{CommandTimeout: 400 * time.Millisecond,
			SlowGreeting: func(d time.Duration) { calls <- time.Since(start); calls <- d }, SlowGreetingAfter: 50 * time.Millisecond}))
		if greet != "" {
			if len(calls) != 0 {
				t.Errorf("SlowGreeting called though the server greeted at once")
			}
			continue
		}
		codeIs(t, err, mailsec.Timeout)
		if len(calls) != 2 {
			t.Fatal("SlowGreeting not called on a silent port")
		}
		if at, d := <-calls, <-calls; d != 50*time.Millisecond || at < 50*time.Millisecond || at > 300*time.Millisecond {
			t.Errorf("SlowGreeting(%v) called after %v, want 50ms after about 50ms", d, at)
		}
	}
}
