package smtp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/sasl"
)

// The server may send exactly one reply per command (RFC 5321 section
// 4.1.1, RFC 2920 section 3.1) and only CRLF ends a line (section 2.3.8).
// Each script here breaks that once; the client must stop with a Protocol
// error before its next command, so that the surplus is never read as the
// answer to a command the server did not answer.

// sendOne runs one transaction of one message to two recipients.
func sendOne(t *testing.T, addr string) error {
	t.Helper()
	c, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSNone, CommandTimeout: 3 * time.Second}))
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Send(context.Background(), "s@x.test", []string{"a@x.test", "b@x.test"}, strings.NewReader("Subject: x\n\nbody\n"), nil)
	return err
}

func TestUnsolicitedRepliesEndTheSession(t *testing.T) {
	const plain = "250-mx.test\r\n250 8BITMIME\r\n"
	for _, tc := range []struct {
		name   string
		script func(p *wiretest.Peer)
		never  []string
	}{
		{"two replies to MAIL in one segment", func(p *wiretest.Peer) {
			greet(p, plain)
			p.Expect("MAIL FROM")
			p.Send("250 2.1.0 ok\r\n250 2.1.5 ok\r\n")
		}, []string{"RCPT", "DATA"}},
		{"a second reply to RCPT", func(p *wiretest.Peer) {
			greet(p, plain)
			p.Expect("MAIL FROM")
			p.Send("250 2.1.0 ok\r\n")
			p.Expect("RCPT TO:<a@x.test>")
			p.Send("250 2.1.5 ok\r\n250 2.1.5 ok\r\n")
		}, []string{"RCPT TO:<b@x.test>", "DATA"}},
		{"a reply behind the 354", func(p *wiretest.Peer) {
			greet(p, plain)
			p.Expect("MAIL FROM")
			p.Send("250 ok\r\n")
			p.Expect("RCPT")
			p.Send("250 ok\r\n")
			p.Expect("RCPT")
			p.Send("250 ok\r\n")
			p.Expect("DATA")
			p.Send("354 go\r\n250 2.0.0 queued\r\n")
		}, []string{"Subject", "."}},
		{"pipelined: four replies to three commands", func(p *wiretest.Peer) {
			greet(p, "250-mx.test\r\n250 PIPELINING\r\n")
			p.Expect("MAIL FROM")
			p.Expect("RCPT")
			p.Expect("RCPT")
			p.Expect("DATA")
			p.Send("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n250 ok\r\n354 go\r\n")
		}, []string{"Subject", "."}},
		{"a reply split by a bare LF", func(p *wiretest.Peer) {
			greet(p, plain)
			p.Expect("MAIL FROM")
			p.Send("550 5.7.1 refused\n250 2.1.0 ok\r\n")
		}, []string{"RCPT", "DATA"}},
		{"a bare CR inside a reply line", func(p *wiretest.Peer) {
			greet(p, plain)
			p.Expect("MAIL FROM")
			p.Send("250 2.1.0 ok\r250 again\r\n")
		}, []string{"RCPT", "DATA"}},
		{"a multi-line reply with a line past its last", func(p *wiretest.Peer) {
			p.Send("220 mx.test\r\n")
			p.Expect("EHLO")
			p.Send("250-mx.test\r\n250 8BITMIME\r\n250 PIPELINING\r\n")
		}, []string{"MAIL"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, rest := wiretest.ScriptedRest(t, func(p *wiretest.Peer) {
				tc.script(p)
			})
			err := sendOne(t, addr)
			codeIs(t, err, mailsec.Protocol)
			wiretest.NeverGot(t, rest(), tc.never...)
		})
	}
}

func TestUnsolicitedGreetingSurplus(t *testing.T) {
	for name, greeting := range map[string]string{
		"a second reply":           "220 mx.test\r\n250 mx.test\r\n",
		"a line behind the last":   "220-mx.test\r\n220 hi\r\n220 again\r\n",
		"a bare LF ending a line":  "220 mx.test\n",
		"a bare LF inside a reply": "220-mx.test\n220 hi\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			addr, rest := wiretest.ScriptedRest(t, func(p *wiretest.Peer) {
				p.Send(greeting)
			})
			_, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSNone, CommandTimeout: 3 * time.Second}))
			codeIs(t, err, mailsec.Protocol)
			wiretest.NeverGot(t, rest(), "EHLO")
		})
	}
}

// A reply that arrives in a later segment, while the session is idle, is
// found before the next command goes out.
func TestUnsolicitedReplyWhileIdle(t *testing.T) {
	opened, sent := make(chan struct{}), make(chan struct{})
	addr, rest := wiretest.ScriptedRest(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250 8BITMIME\r\n")
		<-opened
		p.Send("250 2.1.0 sender ok\r\n")
		close(sent)
	})
	c := dialPlain(t, addr)
	close(opened)
	<-sent
	time.Sleep(50 * time.Millisecond)
	_, err := c.Send(context.Background(), "s@x.test", []string{"a@x.test"}, strings.NewReader("x\n"), nil)
	codeIs(t, err, mailsec.Protocol)
	if c.Err() == nil {
		t.Fatal("the session stays usable after an unsolicited reply")
	}
	wiretest.NeverGot(t, rest(), "MAIL")
}

func TestUnsolicitedBDATReplies(t *testing.T) {
	// One trip: MAIL, RCPT and BDAT LAST answered with four replies.
	addr, rest := wiretest.ScriptedRest(t, func(p *wiretest.Peer) {
		greet(p, ehloPipeChunk)
		p.Expect("MAIL FROM")
		p.Expect("RCPT")
		readChunk(p, true)
		p.Send("250 ok\r\n250 ok\r\n250 2.0.0 queued\r\n250 2.0.0 queued\r\n")
	})
	c := dialPlain(t, addr)
	_, err := c.Send(context.Background(), "s@x.test", []string{"a@x.test"}, strings.NewReader("x\n"), nil)
	codeIs(t, err, mailsec.Protocol)
	wiretest.NeverGot(t, rest(), "MAIL", "QUIT")
}

func TestUnsolicitedBDATChunkReply(t *testing.T) {
	// Two chunks: the first chunk's reply comes twice, which would pass
	// for the last chunk's.
	addr, rest := wiretest.ScriptedRest(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250 CHUNKING\r\n")
		p.Expect("MAIL FROM")
		p.Send("250 ok\r\n")
		p.Expect("RCPT")
		p.Send("250 ok\r\n")
		readChunk(p, false)
		p.Send("250 2.0.0 chunk ok\r\n250 2.0.0 queued\r\n")
	})
	c := dialPlain(t, addr)
	big := strings.Repeat(strings.Repeat("x", 70)+"\n", chunkSize/70+10)
	_, err := c.Send(context.Background(), "s@x.test", []string{"a@x.test"}, strings.NewReader(big), nil)
	codeIs(t, err, mailsec.Protocol)
	for _, l := range rest() {
		if strings.HasSuffix(l, "LAST") {
			t.Fatalf("the last chunk went out after an unsolicited reply: %q", l)
		}
	}
}

func TestUnsolicitedSASLReplies(t *testing.T) {
	cred := sasl.Credentials{Username: "u", Password: "p4ss"}
	for _, tc := range []struct {
		name, mech string
		script     func(p *wiretest.Peer)
		never      []string
	}{
		{"two challenges to one line", "LOGIN", func(p *wiretest.Peer) {
			p.Expect("AUTH LOGIN")
			// Username: and Password: at once: the password would go out
			// as the answer to a challenge the client never read.
			p.Send("334 VXNlcm5hbWU6\r\n334 UGFzc3dvcmQ6\r\n")
		}, []string{"dT", "cDRzcw"}},
		{"a reply behind the 235", "PLAIN", func(p *wiretest.Peer) {
			p.Expect("AUTH PLAIN")
			p.Send("235 2.7.0 ok\r\n250 2.1.0 ok\r\n")
		}, []string{"MAIL", "QUIT"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, rest := wiretest.ScriptedRest(t, func(p *wiretest.Peer) {
				greet(p, "250-mx.test\r\n250 AUTH PLAIN LOGIN\r\n")
				tc.script(p)
			})
			_, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSNone, Auth: &cred,
				Mechanism: tc.mech, AllowPlaintextAuth: true, CommandTimeout: 3 * time.Second}))
			codeIs(t, err, mailsec.Protocol)
			wiretest.NeverGot(t, rest(), tc.never...)
		})
	}
}

// A multi-line reply is one reply only with the same code on every line
// and a last line without "-" (RFC 5321 section 4.2.1): one whose code
// changes, or whose last line never comes, is not taken for a reply.
func TestBrokenMultilineReply(t *testing.T) {
	for _, tc := range []struct {
		name, ehlo string
		code       mailsec.Code
	}{
		{"code changes", "250-mx.test\r\n550 5.7.1 no\r\n", mailsec.Protocol},
		{"code changes to a continuation", "250-mx.test\r\n354-go\r\n250 ok\r\n", mailsec.Protocol},
		{"last line missing, connection closed", "250-mx.test\r\n250-PIPELINING\r\n", mailsec.SocketRx},
		{"last line missing, server waits", "250-mx.test\r\n250-PIPELINING\r\n", mailsec.Timeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, rest := wiretest.ScriptedRest(t, func(p *wiretest.Peer) {
				p.Send("220 mx.test\r\n")
				p.Expect("EHLO")
				p.Send(tc.ehlo)
				if tc.code == mailsec.SocketRx {
					p.Conn.Close()
				}
			})
			_, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSNone, CommandTimeout: 300 * time.Millisecond}))
			codeIs(t, err, tc.code)
			wiretest.NeverGot(t, rest(), "MAIL", "HELO", "QUIT")
		})
	}
}

// In a batch the next envelope is in flight behind the end of data, so a
// second reply to the dot is read as MAIL's: the replies of that group are
// then one too many, and the second message's content never goes out.
func TestUnsolicitedReplyInBatch(t *testing.T) {
	addr, rest := wiretest.ScriptedRest(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250 PIPELINING\r\n")
		p.Expect("MAIL FROM")
		p.Expect("RCPT")
		p.Expect("DATA")
		p.Send("250 ok\r\n250 ok\r\n354 go\r\n")
		readData(p)
		p.Expect("MAIL FROM")
		p.Expect("RCPT")
		p.Expect("DATA")
		p.Send("250 2.0.0 queued\r\n250 2.0.0 queued again\r\n250 ok\r\n250 ok\r\n354 go\r\n")
	})
	c := dialPlain(t, addr)
	defer c.Close()
	out := c.SendBatch(context.Background(), []Message{
		{From: "s@x.test", To: []string{"a@x.test"}, Body: strings.NewReader("one\n")},
		{From: "s@x.test", To: []string{"a@x.test"}, Body: strings.NewReader("two\n")},
	})
	if out[0].Err != nil {
		t.Fatalf("message 1: %v", out[0].Err)
	}
	codeIs(t, out[1].Err, mailsec.Protocol)
	wiretest.NeverGot(t, rest(), "two", ".")
}
