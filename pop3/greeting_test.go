package pop3

import (
	"context"
	"strings"
	"sync"
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
		{"silent POP3S port", "", mailsec.Timeout, "try implicit TLS"},
		{"SMTP server", "220 mx.test ESMTP\r\n", mailsec.Protocol, "this is an SMTP server"},
		{"IMAP server", "* OK [CAPABILITY IMAP4rev1] ready\r\n", mailsec.Protocol, "this is an IMAP server"},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr, _, _ := wiretest.Scripted(t, func(p *wiretest.Peer) {
				p.Send(c.greet)
				p.Hold()
			})
			_, err := Dial(context.Background(), addr, &Options{TLSMode: TLSStartTLS, CommandTimeout: 200 * time.Millisecond})
			if mailsec.CodeOf(err) != c.code || !strings.Contains(err.Error(), c.hint) {
				t.Fatalf("error %v (code %v), want %v saying %q", err, mailsec.CodeOf(err), c.code, c.hint)
			}
		})
	}
}

// SlowGreeting is told of a silent POP3 port during the wait, once.
func TestSlowGreetingHook(t *testing.T) {
	addr, _, _ := wiretest.Scripted(t, func(p *wiretest.Peer) {
		p.Hold()
	})
	var calls []time.Duration
	var mu sync.Mutex
	start := time.Now()
	_, err := Dial(context.Background(), addr, &Options{TLSMode: TLSStartTLS, CommandTimeout: 400 * time.Millisecond,
		SlowGreetingAfter: 30 * time.Millisecond, SlowGreeting: func(time.Duration) {
			mu.Lock()
			calls = append(calls, time.Since(start))
			mu.Unlock()
		}})
	codeIs(t, err, mailsec.Timeout)
	mu.Lock()
	defer mu.Unlock()
	if len(calls) != 1 || calls[0] < 30*time.Millisecond || calls[0] > 300*time.Millisecond {
		t.Fatalf("SlowGreeting calls at %v, want one after about 30ms", calls)
	}
}
