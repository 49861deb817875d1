package smtp

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
)

// The EAST study's UI-spoofing class: a man in the middle answers STARTTLS
// with a 454 that asks the user to call a number. Text received before TLS
// (or under TLS that was not verified) is marked wherever a person sees
// it; the same text inside a verified TLS session is not.

const spoof = "TLS is down, call +1-555-0100 to restore your mailbox"

// spoofLine returns the transcript line that carries the spoofed text.
func spoofLine(t *testing.T, transcript string) string {
	t.Helper()
	for _, l := range strings.Split(transcript, "\n") {
		if strings.Contains(l, "+1-555-0100") {
			return l
		}
	}
	t.Fatalf("no transcript line with the server's text:\n%s", transcript)
	return ""
}

func TestCleartextRefusalMarked(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250 STARTTLS\r\n")
		p.Expect("STARTTLS")
		p.Send("454 4.7.0 " + spoof + "\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	var tr strings.Builder
	_, err := Dial(context.Background(), addr, clientOpts(Options{Transcript: &tr}))
	codeIs(t, err, mailsec.SMTPServer)
	<-done
	const mark = "(unverified server text, received before TLS)"
	if msg := err.Error(); !strings.Contains(msg, spoof+" "+mark) {
		t.Errorf("error %q does not mark the cleartext reply", msg)
	}
	j, _ := json.Marshal(mailsec.ReplyOf(err))
	if !strings.Contains(string(j), `"channel":"cleartext"`) {
		t.Errorf("JSON reply %s does not say it came in clear text", j)
	}
	if l := spoofLine(t, tr.String()); !strings.HasPrefix(l, "<- (unverified) 454 4.7.0 ") {
		t.Errorf("transcript line %q is not marked", l)
	}
}

func TestCleartextGreetingMarked(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		p.Send("554 5.7.1 " + spoof + "\r\n")
	})
	_, err := Dial(context.Background(), addr, clientOpts(Options{}))
	codeIs(t, err, mailsec.SMTPServer)
	<-done
	if msg := err.Error(); !strings.Contains(msg, "(unverified server text, received before TLS)") {
		t.Errorf("error %q does not mark the greeting", msg)
	}
}

// sendUnderTLS opens a STARTTLS session with o and sends a message the
// server refuses with the spoofed text.
func sendUnderTLS(t *testing.T, o Options) (transcript string, err error) {
	t.Helper()
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		toTLS(p, "")
		p.Expect("EHLO")
		p.Send("250 mx.test\r\n")
		p.Expect("MAIL FROM")
		p.Send("554 5.7.1 " + spoof + "\r\n")
		p.Expect("RSET")
		p.Send("250 ok\r\n")
	})
	var tr strings.Builder
	o.Transcript = &tr
	c, derr := Dial(context.Background(), addr, clientOpts(o))
	if derr != nil {
		t.Fatal(derr)
	}
	defer c.Close()
	_, err = c.Send(context.Background(), "s@x.test", []string{"a@x.test"}, strings.NewReader("x\n"), nil)
	codeIs(t, err, mailsec.SMTPServer)
	<-done
	return tr.String(), err
}

func TestVerifiedTLSReplyUnmarked(t *testing.T) {
	tr, err := sendUnderTLS(t, Options{})
	if msg := err.Error(); strings.Contains(msg, "unverified") || !strings.Contains(msg, spoof) {
		t.Errorf("error %q: a reply under verified TLS is marked or lost", msg)
	}
	if j, _ := json.Marshal(mailsec.ReplyOf(err)); strings.Contains(string(j), "channel") {
		t.Errorf("JSON reply %s under verified TLS names a channel", j)
	}
	if l := spoofLine(t, tr); l != "<~ 554 5.7.1 "+spoof {
		t.Errorf("transcript line %q changed under TLS", l)
	}
}

func TestUnverifiedTLSReplyMarked(t *testing.T) {
	var noChain, noName Options
	noChain.TLS.NoServerCertificateValidation = true
	noName.TLS.NoServerNameCheck = true
	for name, o := range map[string]Options{"no certificate validation": noChain, "no name check": noName} {
		t.Run(name, func(t *testing.T) {
			tr, err := sendUnderTLS(t, o)
			if msg := err.Error(); !strings.Contains(msg, spoof+" (unverified server text, TLS without verification)") {
				t.Errorf("error %q does not mark a reply under unverified TLS", msg)
			}
			if r := mailsec.ReplyOf(err); r.Channel != mailsec.ChannelUnverifiedTLS {
				t.Errorf("channel %v", r.Channel)
			}
			if l := spoofLine(t, tr); l != "<~ 554 5.7.1 "+spoof {
				t.Errorf("transcript line %q: <~ lines stay as they are", l)
			}
		})
	}
}

// A malformed line quoted in the error is server text too.
func TestQuotedServerTextMarked(t *testing.T) {
	for _, tc := range []struct {
		name     string
		implicit bool
		line     string
		mark     bool
	}{
		{"malformed line before TLS", false, "XYZ " + spoof + "\r\n", true},
		{"another protocol's greeting before TLS", false, "+OK " + spoof + "\r\n", true},
		{"bare LF before TLS", false, "220 " + spoof + "\n", true},
		{"malformed line under verified TLS", true, "XYZ " + spoof + "\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
				if tc.implicit {
					p.StartTLS()
				}
				p.Send(tc.line)
			})
			o := Options{TLSMode: TLSNone}
			if tc.implicit {
				o.TLSMode = TLSImplicit
			}
			_, err := Dial(context.Background(), addr, clientOpts(o))
			codeIs(t, err, mailsec.Protocol)
			<-done
			msg := err.Error()
			if !strings.Contains(msg, "+1-555-0100") {
				t.Fatalf("error %q does not quote the line", msg)
			}
			if marked := strings.Contains(msg, "(unverified server text, received before TLS)"); marked != tc.mark {
				t.Errorf("error %q: marked %v, want %v", msg, marked, tc.mark)
			}
		})
	}
}
