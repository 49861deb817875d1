package smtp

import (
	"context"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
)

const ehloPipeData = "250-mx.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n"

// readData reads dot-stuffed content up to the lone dot and returns it
// unstuffed, one "\n" per line.
func readData(p *wiretest.Peer) string {
	var b strings.Builder
	for {
		l := p.Expect("")
		// A failed read has been reported; going on would spin on the
		// closed connection instead of letting the test fail.
		if l == "." || p.T.Failed() {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(l, ".") + "\n")
	}
}

// With DATA, each message's content and end of data share a write with the
// next envelope (RFC 2920 section 3.1): the script reads message 1's dot
// and message 2's MAIL, RCPT and DATA before it answers either, so a client
// that waited for the 250 first would stall here and fail. A refused
// recipient in the middle ends its own transaction only; an address that
// cannot be sent never reaches the server.
func TestSendBatchPipelinesDATA(t *testing.T) {
	var bodies []string
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, ehloPipeData)
		p.Expect("MAIL FROM:<s@x.test>")
		p.Expect("RCPT TO:<a@x.test>")
		p.Expect("DATA")
		p.Send("250 ok\r\n250 ok\r\n354 go\r\n")
		bodies = append(bodies, readData(p))
		p.Expect("MAIL FROM:<s@x.test>")
		p.Expect("RCPT TO:<nobody@x.test>")
		p.Expect("DATA")
		p.Send("250 2.0.0 queued as ONE\r\n")
		p.Send("250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n")
		p.Expect("RSET")
		p.Send("250 ok\r\n")
		p.Expect("MAIL FROM:<s@x.test>")
		p.Expect("RCPT TO:<b@x.test>")
		p.Expect("DATA")
		p.Send("250 ok\r\n250 ok\r\n354 go\r\n")
		bodies = append(bodies, readData(p))
		p.Send("250 2.0.0 queued as THREE\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	c := dialPlain(t, addr)
	msgs := []Message{
		{From: "s@x.test", To: []string{"a@x.test"}, Body: strings.NewReader("Subject: 1\n\n.dot\n")},
		{From: "s@x.test", To: []string{"nobody@x.test"}, Body: strings.NewReader("Subject: 2\n\nlost\n")},
		{From: "s@x.test", To: []string{"bad\r\nRSET@x.test"}, Body: strings.NewReader("never\n")},
		{From: "s@x.test", To: []string{"b@x.test"}, Body: strings.NewReader("Subject: 3\n\nthree")},
	}
	res := c.SendBatch(context.Background(), msgs)
	if err := c.Quit(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	if res[0].Err != nil || res[0].Reply.Text() != "queued as ONE" || res[3].Err != nil || res[3].Reply.Text() != "queued as THREE" {
		t.Fatalf("accepted messages: %+v / %+v", res[0], res[3])
	}
	if r := mailsec.ReplyOf(res[1].Err); r == nil || r.Enhanced != "5.1.1" || res[1].Recipients[0].OK {
		t.Fatalf("refused recipient: %v, %+v", res[1].Err, res[1].Result)
	}
	if mailsec.CodeOf(res[2].Err) == 0 {
		t.Fatalf("an address with CRLF was not refused: %v", res[2].Err)
	}
	if want := "Subject: 1\n\n.dot\n|Subject: 3\n\nthree\n"; strings.Join(bodies, "|") != want {
		t.Fatalf("server got %q, want %q", bodies, want)
	}
}

// A server that drops the connection mid-batch: the message in flight and
// the ones after it carry the error; none is reported as sent.
func TestSendBatchBrokenSession(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, ehloPipeData)
		p.Expect("MAIL")
		p.Expect("RCPT")
		p.Expect("DATA")
		p.Send("250 ok\r\n250 ok\r\n354 go\r\n")
		readData(p)
		p.Expect("MAIL")
		p.Expect("RCPT")
		p.Expect("DATA")
	})
	c := dialPlain(t, addr)
	defer c.Close()
	var msgs []Message
	for range 3 {
		msgs = append(msgs, Message{From: "s@x.test", To: []string{"a@x.test"}, Body: strings.NewReader("x\n")})
	}
	res := c.SendBatch(context.Background(), msgs)
	<-done
	for i, r := range res {
		if r.Err == nil {
			t.Fatalf("message %d reported sent by a server that closed the connection", i)
		}
	}
	if code := mailsec.CodeOf(res[0].Err); code != mailsec.SocketRx {
		t.Fatalf("message 0: %v (code %v), want SocketRx", res[0].Err, code)
	}
}
