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

// The attacks of a hostile POP3 server on the client: each gives a coded
// error and leaves nothing half-believed.

// loggedIn dials a POP3S session with USER/PASS against script, which
// runs after the login.
func loggedIn(t *testing.T, script func(s *wiretest.Peer)) *Client {
	t.Helper()
	addr := scripted(t, true, func(s *wiretest.Peer) {
		loginTLS(s, "USER", "UIDL")
		script(s)
	})
	c, err := Dial(context.Background(), addr, opts(Options{TLSMode: TLSImplicit, Auth: carol, Mechanism: "user", CommandTimeout: time.Second}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestStatusVariants(t *testing.T) {
	for _, line := range []string{"+ok", "+Ok fine", "+OKfine", "-err", "-ERRno", "OK", "", "\x00+OK"} {
		_, err := parseReply(line)
		codeIs(t, err, mailsec.Protocol)
	}
	for _, line := range []string{"+OK", "-ERR", "+OK  two spaces", "-ERR [SYS/TEMP] later"} {
		if _, err := parseReply(line); err != nil {
			t.Errorf("%q: %v", line, err)
		}
	}
}

func TestHostileUIDLs(t *testing.T) {
	cases := map[string]string{
		"control character": "1 ab\x01c\r\n",
		"1 KiB uid":         "1 " + strings.Repeat("u", 1024) + "\r\n",
		"8-bit":             "1 ab\xffc\r\n",
		"extra field":       "1 abc def\r\n",
		"duplicate":         "1 same\r\n2 same\r\n",
		"no uid":            "1\r\n",
		"number zero":       "0 abc\r\n",
		"number twice":      "1 abc\r\n1 def\r\n",
	}
	for name, listing := range cases {
		t.Run(name, func(t *testing.T) {
			c := loggedIn(t, func(s *wiretest.Peer) {
				s.Expect("UIDL")
				s.Send("+OK\r\n" + listing + ".\r\n")
			})
			uids, err := c.Uidl(context.Background())
			codeIs(t, err, mailsec.Protocol)
			if uids != nil {
				t.Fatalf("uids %v from a bad listing", uids)
			}
		})
	}
}

func TestPathLikeUIDLsStayOpaque(t *testing.T) {
	// RFC 1939 section 7 allows "/" and "." in a unique-id; the client
	// returns them as they are and the mailbox never uses them as paths.
	c := loggedIn(t, func(s *wiretest.Peer) {
		s.Expect("UIDL")
		s.Send("+OK\r\n1 ../../x\r\n2 /\r\n3 .\r\n.\r\n")
	})
	uids, err := c.Uidl(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(uids) != 3 || uids[0].UID != "../../x" || uids[1].UID != "/" || uids[2].UID != "." {
		t.Fatalf("uids %v", uids)
	}
}

func TestCAPAFlood(t *testing.T) {
	addr := scripted(t, true, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		s.Expect("CAPA")
		s.Send("+OK\r\n")
		line := strings.Repeat("X-JUNK\r\n", 1000)
		for range 100 {
			s.Send(line)
		}
		s.Send(".\r\n")
	})
	_, err := Dial(context.Background(), addr, opts(Options{TLSMode: TLSImplicit}))
	codeIs(t, err, mailsec.Protocol)
}

func TestEndlessListTimesOut(t *testing.T) {
	stop := make(chan struct{})
	c := loggedIn(t, func(s *wiretest.Peer) {
		s.Expect("LIST")
		s.Send("+OK\r\n")
		for n := 1; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
				s.Send("1 100\r\n")
			}
		}
	})
	_, err := c.List(context.Background())
	close(stop)
	codeIs(t, err, mailsec.Timeout)
}

func TestRetrLargerThanListed(t *testing.T) {
	// LIST is a claim; the body ends where the terminator is, however
	// far from the claimed size, and dot-stuffing is undone exactly.
	body := "Subject: x\r\n\r\n..\r\n...\r\n. \r\n.x\r\n" + strings.Repeat("y", 10000) + "\r\n"
	c := loggedIn(t, func(s *wiretest.Peer) {
		s.Expect("LIST")
		s.Send("+OK\r\n1 10\r\n.\r\n")
		s.Expect("RETR 1")
		s.Send("+OK\r\n" + stuff(body))
		s.Expect("NOOP")
		s.Send("+OK\r\n")
	})
	ctx := context.Background()
	if _, err := c.List(ctx); err != nil {
		t.Fatal(err)
	}
	b, err := c.Retr(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != body {
		t.Fatalf("body %q", got)
	}
	if err := c.Noop(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestAPOPTimestampInjection(t *testing.T) {
	// RFC 1939 section 7 makes the timestamp a msg-id (RFC 822): printable
	// ASCII. A server choosing arbitrary octets there can use MD5 chosen-
	// prefix collisions to recover the password a few characters at a
	// time (the attack of Leurent, 2007), so such a greeting is refused.
	for _, greeting := range []string{
		"+OK <\xff\xfe\x80@x>",
		"+OK <a\x00b@x>",
		"+OK <a b@x>",
		"+OK <a@b@c>",
		"+OK <@>",
	} {
		addr := scripted(t, true, func(s *wiretest.Peer) {
			s.Send(greeting + "\r\n")
			capa(s, "USER")
			s.Expect("QUIT")
			s.Send("+OK\r\n")
		})
		_, err := Dial(context.Background(), addr, opts(Options{TLSMode: TLSImplicit, Mechanism: "apop",
			Auth: &sasl.Credentials{Username: "mrose", Password: "tanstaaf"}}))
		codeIs(t, err, mailsec.AuthUnavailable)
	}
}

func TestSTLSRefusedUnderMandatoryMode(t *testing.T) {
	addr, p, done := wiretest.Scripted(t, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		capa(s, "STLS", "USER", "SASL PLAIN")
		s.Expect("STLS")
		s.Send("-ERR [SYS/TEMP] not now\r\n")
		s.Expect("QUIT")
		s.Send("+OK\r\n")
	})
	_, err := Dial(context.Background(), addr, opts(Options{Auth: carol}))
	codeIs(t, err, mailsec.POPServer)
	<-done
	for _, l := range p.Got {
		if strings.HasPrefix(l, "USER") || strings.HasPrefix(l, "PASS") || strings.HasPrefix(l, "AUTH") {
			t.Fatalf("credentials sent: %q", l)
		}
	}
}

func TestSASLChallengeLoop(t *testing.T) {
	rounds := 0
	addr := scripted(t, true, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		capa(s, "SASL LOGIN")
		s.Expect("AUTH LOGIN")
		for range 50 {
			s.Send("+ \r\n")
			if l := s.Expect(""); l == "*" || l == "" {
				s.Send("-ERR cancelled\r\n")
				return
			}
			rounds++
		}
	})
	_, err := Dial(context.Background(), addr, opts(Options{TLSMode: TLSImplicit, Auth: carol, Mechanism: "login"}))
	codeIs(t, err, mailsec.Protocol)
	if rounds > 2 {
		t.Fatalf("answered %d challenges", rounds)
	}
}

func TestInjectionBeforeSTLS(t *testing.T) {
	addr, p, done := wiretest.Scripted(t, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		s.Expect("CAPA")
		s.Send("+OK\r\nSTLS\r\nUSER\r\n.\r\n+OK begin TLS\r\n")
		time.Sleep(100 * time.Millisecond)
	})
	_, err := Dial(context.Background(), addr, opts(Options{Auth: carol}))
	codeIs(t, err, mailsec.Protocol)
	<-done
	for _, l := range p.Got {
		if l == "STLS" {
			t.Fatal("STLS sent over a desynchronised session")
		}
	}
}
