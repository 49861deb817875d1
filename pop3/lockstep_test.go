package pop3

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/sasl"
)

// RFC 1939 section 3 gives one response per command, and only CRLF ends a
// line. Each script breaks that once; the client must stop with a Protocol
// error before its next command, so that the surplus is never read as the
// answer to a command the server did not answer.

// plainOpts log in with USER/PASS in plain text, as a test server without
// TLS needs.
func plainOpts() *Options {
	return opts(Options{TLSMode: TLSNone, Auth: carol, Mechanism: "user", AllowPlaintextAuth: true, CommandTimeout: 3 * time.Second})
}

func TestUnsolicitedResponsesAtLogin(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script func(s *wiretest.Peer)
		never  []string
	}{
		{"a second greeting", func(s *wiretest.Peer) {
			s.Send("+OK ready\r\n+OK ready\r\n")
		}, []string{"CAPA"}},
		{"a greeting ending in a bare LF", func(s *wiretest.Peer) {
			s.Send("+OK ready\n")
		}, []string{"CAPA"}},
		{"a bare LF splitting the greeting", func(s *wiretest.Peer) {
			s.Send("+OK ready\n+OK again\r\n")
		}, []string{"CAPA"}},
		{"a response behind the CAPA terminator", func(s *wiretest.Peer) {
			s.Send("+OK ready\r\n")
			s.Expect("CAPA")
			s.Send("+OK\r\nUSER\r\n.\r\n+OK\r\n")
		}, []string{"USER"}},
		{"a CAPA line ending in a bare LF", func(s *wiretest.Peer) {
			s.Send("+OK ready\r\n")
			s.Expect("CAPA")
			s.Send("+OK\r\nUSER\n.\r\n")
		}, []string{"USER"}},
		{"two responses to USER", func(s *wiretest.Peer) {
			s.Send("+OK ready\r\n")
			capa(s, "USER")
			s.Expect("USER carol")
			s.Send("-ERR no such user\r\n+OK\r\n")
		}, []string{"PASS"}},
		{"a bare CR inside a status line", func(s *wiretest.Peer) {
			s.Send("+OK ready\r\n")
			capa(s, "USER")
			s.Expect("USER carol")
			s.Send("-ERR no\r+OK\r\n")
		}, []string{"PASS"}},
		{"a SASL challenge to USER", func(s *wiretest.Peer) {
			s.Send("+OK ready\r\n")
			capa(s, "USER")
			s.Expect("USER carol")
			s.Send("+ \r\n")
		}, []string{"PASS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, rest := wiretest.ScriptedRest(t, func(s *wiretest.Peer) {
				tc.script(s)
			})
			_, err := Dial(context.Background(), addr, plainOpts())
			codeIs(t, err, mailsec.Protocol)
			wiretest.NeverGot(t, rest(), tc.never...)
		})
	}
}

// openPlain logs in with a scripted server that then runs after; rest
// returns what the client sent after that (see wiretest.ScriptedRest).
func openPlain(t *testing.T, after func(s *wiretest.Peer)) (c *Client, rest func() []string) {
	t.Helper()
	addr, rest := wiretest.ScriptedRest(t, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		capa(s, "USER", "PIPELINING")
		s.Expect("USER carol")
		s.Send("+OK\r\n")
		s.Expect("PASS")
		s.Send("+OK\r\n")
		after(s)
	})
	c, err := Dial(context.Background(), addr, plainOpts())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, rest
}

func TestUnsolicitedResponseBehindBody(t *testing.T) {
	c, rest := openPlain(t, func(s *wiretest.Peer) {
		s.Expect("RETR 1")
		s.Send("+OK\r\nbody\r\n.\r\n+OK 0 0\r\n")
	})
	b, err := c.Retr(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(b)
	codeIs(t, err, mailsec.Protocol)
	if _, _, err := c.Stat(context.Background()); err == nil {
		t.Fatal("STAT answered on a session out of step")
	}
	wiretest.NeverGot(t, rest(), "STAT")
}

func TestUnsolicitedResponsePipelined(t *testing.T) {
	// Three DELE answers to two DELEs: the surplus would answer QUIT.
	c, rest := openPlain(t, func(s *wiretest.Peer) {
		s.Expect("DELE 1")
		s.Expect("DELE 2")
		s.Send("+OK\r\n+OK\r\n+OK bye\r\n")
	})
	codeIs(t, c.DeleEach(context.Background(), []int{1, 2}), mailsec.Protocol)
	wiretest.NeverGot(t, rest(), "QUIT")
}

func TestUnsolicitedResponseWhileIdle(t *testing.T) {
	opened, sent := make(chan struct{}), make(chan struct{})
	c, rest := openPlain(t, func(s *wiretest.Peer) {
		<-opened
		s.Send("+OK 1 100\r\n")
		close(sent)
	})
	close(opened)
	<-sent
	time.Sleep(50 * time.Millisecond)
	_, _, err := c.Stat(context.Background())
	codeIs(t, err, mailsec.Protocol)
	wiretest.NeverGot(t, rest(), "STAT")
}

func TestUnsolicitedSASLResponses(t *testing.T) {
	cred := &sasl.Credentials{Username: "carol", Password: "s3cret-Pa55"}
	for name, script := range map[string]func(s *wiretest.Peer){
		"a response behind the final +OK": func(s *wiretest.Peer) {
			s.Expect("AUTH PLAIN")
			s.Send("+OK logged in\r\n+OK 1 100\r\n")
		},
		"two challenges to one line": func(s *wiretest.Peer) {
			s.Expect("AUTH LOGIN")
			s.Send("+ VXNlcm5hbWU6\r\n+ UGFzc3dvcmQ6\r\n")
		},
	} {
		t.Run(name, func(t *testing.T) {
			mech := "PLAIN"
			if strings.Contains(name, "challenges") {
				mech = "LOGIN"
			}
			addr, rest := wiretest.ScriptedRest(t, func(s *wiretest.Peer) {
				s.Send("+OK ready\r\n")
				capa(s, "SASL PLAIN LOGIN")
				script(s)
			})
			_, err := Dial(context.Background(), addr, opts(Options{TLSMode: TLSNone, Auth: cred, Mechanism: mech,
				AllowPlaintextAuth: true, CommandTimeout: 3 * time.Second}))
			codeIs(t, err, mailsec.Protocol)
			// Neither the user name nor the password answers a challenge
			// that was never read, and nothing follows the final surplus.
			wiretest.NeverGot(t, rest(), "Y2Fyb2w", "czNjcmV0", "STAT", "QUIT", "CAPA")
		})
	}
}
