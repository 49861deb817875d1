package smtp

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
)

const ehloPipeChunk = "250-mx.test\r\n250-PIPELINING\r\n250 CHUNKING\r\n"

// readChunk reads "BDAT n [LAST]" and its n octets.
func readChunk(p *wiretest.Peer, last bool) string {
	line := p.Expect("BDAT ")
	f := strings.Fields(line)
	if len(f) < 2 || (f[len(f)-1] == "LAST") != last {
		p.T.Errorf("server: %q, want LAST=%v", line, last)
		return ""
	}
	n, _ := strconv.Atoi(f[1])
	buf := make([]byte, n)
	if _, err := io.ReadFull(p.R, buf); err != nil {
		p.T.Errorf("server: chunk of %d: %v", n, err)
	}
	return string(buf)
}

// A message that fits one chunk goes out with its envelope before any reply:
// the script reads MAIL, RCPT and the whole BDAT LAST before it answers, so a
// client that waited for MAIL's reply would stall here and fail.
func TestBDATOneRoundTrip(t *testing.T) {
	var got []string
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, ehloPipeChunk)
		for range 2 {
			p.Expect("MAIL FROM:<s@x.test>")
			p.Expect("RCPT TO:<a@x.test>")
			got = append(got, readChunk(p, true))
			p.Send("250 2.1.0 ok\r\n250 2.1.5 ok\r\n250 2.0.0 queued\r\n")
		}
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	c := dialPlain(t, addr)
	for i, m := range []string{"Subject: one\n\nbody\n.\n", "Subject: two\r\n\r\nx"} {
		res, err := c.Send(context.Background(), "s@x.test", []string{"a@x.test"}, strings.NewReader(m), nil)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if res.Reply.Code != 250 || len(res.Recipients) != 1 || !res.Recipients[0].OK {
			t.Fatalf("message %d: %+v", i, res)
		}
	}
	if err := c.Quit(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	// BDAT carries the octets as they are: CRLF made, no dot-stuffing
	// (RFC 3030 section 2).
	if want := []string{"Subject: one\r\n\r\nbody\r\n.\r\n", "Subject: two\r\n\r\nx\r\n"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("server got %q, want %q", got, want)
	}
}

// The recipient is refused after the data already went: the RCPT reply is
// the error, the recipient is marked refused, and RSET clears the session.
func TestBDATOneRoundTripRefusedRecipient(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, ehloPipeChunk)
		p.Expect("MAIL")
		p.Expect("RCPT")
		readChunk(p, true)
		p.Send("250 ok\r\n550 5.1.1 no such user\r\n554 5.5.1 no valid recipients\r\n")
		p.Expect("RSET")
		p.Send("250 ok\r\n")
	})
	c := dialPlain(t, addr)
	res, err := c.Send(context.Background(), "s@x.test", []string{"nobody@x.test"}, strings.NewReader("x\n"), nil)
	codeIs(t, err, mailsec.SMTPServer)
	if r := mailsec.ReplyOf(err); r == nil || r.Code != 550 || r.Enhanced != "5.1.1" {
		t.Fatalf("reply %+v, want the RCPT's 550 5.1.1", r)
	}
	if len(res.Recipients) != 1 || res.Recipients[0].OK {
		t.Fatalf("recipients %+v", res.Recipients)
	}
	<-done
}

// A message larger than one chunk learns the envelope's fate before its
// data: a refused recipient means no octet of the message is sent.
func TestBDATLargeMessageWaitsForEnvelope(t *testing.T) {
	big := strings.Repeat(strings.Repeat("y", 70)+"\r\n", chunkSize/72+100)
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, ehloPipeChunk)
		p.Expect("MAIL")
		p.Expect("RCPT")
		p.Send("250 ok\r\n250 ok\r\n")
		first := readChunk(p, false)
		p.Send("250 more\r\n")
		rest := readChunk(p, true)
		p.Send("250 2.0.0 queued\r\n")
		if first+rest != big {
			p.T.Errorf("server got %d+%d octets, want %d identical", len(first), len(rest), len(big))
		}
		p.Expect("MAIL")
		p.Expect("RCPT")
		p.Send("250 ok\r\n550 5.1.1 no such user\r\n")
		// Next must be RSET: a BDAT here would be data sent to no one.
		p.Expect("RSET")
		p.Send("250 ok\r\n")
	})
	c := dialPlain(t, addr)
	if _, err := c.Send(context.Background(), "s@x.test", []string{"a@x.test"}, strings.NewReader(big), nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.Send(context.Background(), "s@x.test", []string{"b@x.test"}, strings.NewReader(big), nil)
	codeIs(t, err, mailsec.SMTPServer)
	<-done
}

// The connection drops while the envelope replies behind the last chunk are
// read: the session breaks with that error. (The replies read so far must
// not be judged as a whole envelope; that once indexed past their end.)
func TestBDATOneRoundTripDropInEnvelopeReplies(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, ehloPipeChunk)
		p.Expect("MAIL")
		p.Expect("RCPT")
		readChunk(p, true)
		p.Send("250 ok\r\n")
	})
	c := dialPlain(t, addr)
	_, err := c.Send(context.Background(), "s@x.test", []string{"a@x.test"}, strings.NewReader("x\n"), nil)
	codeIs(t, err, mailsec.SocketRx)
	if _, err := c.Send(context.Background(), "s@x.test", []string{"a@x.test"}, strings.NewReader("x\n"), nil); !errors.Is(err, mailsec.SocketRx) {
		t.Fatalf("after the drop: %v, want the session's SocketRx", err)
	}
	<-done
}
