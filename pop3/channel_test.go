package pop3

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
)

// A -ERR refusing STLS arrives before TLS, so a man in the middle may have
// written it: the error and the transcript say so. The same text inside a
// verified TLS session is shown as it is.

const spoof = "mailbox locked, call +1-555-0100 to unlock"

func TestCleartextErrMarked(t *testing.T) {
	addr := scripted(t, false, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		capa(s, "STLS", "USER")
		s.Expect("STLS")
		s.Send("-ERR " + spoof + "\r\n")
		s.Expect("QUIT")
		s.Send("+OK\r\n")
	})
	var tr bytes.Buffer
	_, err := Dial(context.Background(), addr, opts(Options{Auth: carol, Transcript: &tr}))
	codeIs(t, err, mailsec.POPServer)
	if msg := err.Error(); !strings.Contains(msg, spoof+" (unverified server text, received before TLS)") {
		t.Errorf("error %q does not mark the cleartext -ERR", msg)
	}
	if !strings.Contains(tr.String(), "<- (unverified) -ERR "+spoof+"\n") {
		t.Errorf("transcript does not mark the cleartext -ERR:\n%s", tr.String())
	}
}

func TestVerifiedTLSErrUnmarked(t *testing.T) {
	addr := scripted(t, true, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		capa(s, "USER")
		s.Expect("USER carol")
		s.Send("+OK\r\n")
		s.Expect("PASS ")
		s.Send("-ERR " + spoof + "\r\n")
		s.Expect("QUIT")
		s.Send("+OK\r\n")
	})
	var tr bytes.Buffer
	_, err := Dial(context.Background(), addr, opts(Options{TLSMode: TLSImplicit, Auth: carol, Mechanism: "user", Transcript: &tr}))
	codeIs(t, err, mailsec.POPServer)
	if msg := err.Error(); strings.Contains(msg, "unverified") || !strings.Contains(msg, spoof) {
		t.Errorf("error %q: a reply under verified TLS is marked or lost", msg)
	}
	if !strings.Contains(tr.String(), "<~ -ERR "+spoof+"\n") {
		t.Errorf("transcript changed the -ERR under TLS:\n%s", tr.String())
	}
}

// A malformed STAT answer quoted in the error is server text too.
func TestQuotedServerTextMarked(t *testing.T) {
	addr := scripted(t, false, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		capa(s, "USER")
		s.Expect("USER carol")
		s.Send("+OK\r\n")
		s.Expect("PASS ")
		s.Send("+OK\r\n")
		s.Expect("STAT")
		s.Send("+OK " + spoof + "\r\n")
	})
	c, err := Dial(context.Background(), addr, opts(Options{TLSMode: TLSNone, Auth: carol, Mechanism: "user", AllowPlaintextAuth: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, _, err = c.Stat(context.Background())
	codeIs(t, err, mailsec.Protocol)
	if msg := err.Error(); !strings.Contains(msg, spoof+`" (unverified server text, received before TLS)`) {
		t.Errorf("error %q does not mark the quoted answer", msg)
	}
}
