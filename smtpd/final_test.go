package smtpd

import (
	"strings"
	"testing"
)

// afterFinal checks that msg begins with the lines of the final delivery,
// Return-Path with from and Delivered-To with to, and returns the rest.
func afterFinal(t *testing.T, msg, from, to string) string {
	t.Helper()
	want := "Return-Path: <" + from + ">\r\nDelivered-To: " + to + "\r\n"
	rest, ok := strings.CutPrefix(msg, want)
	if !ok {
		t.Fatalf("message does not begin with %q:\n%q", want, msg)
	}
	return rest
}

// Final delivery into a mailbox adds Return-Path (RFC 5321 section 4.4)
// and Delivered-To, per mailbox: the address that reached it, in lower
// case, and <> for the null sender; on the MX listener and on submission
// to a local user alike, by DATA and by BDAT.
func TestFinalDeliveryHeaders(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<>", 250)
	c.cmd("RCPT TO:<Alice@EXAMPLE.test>", 250)
	c.cmd("RCPT TO:<bob@localhost>", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250) // the same mailbox: one copy, named by the first
	c.cmd("DATA", 354)
	c.cmd("Subject: bounce\r\n\r\nx\r\n.", 250)
	for box, to := range map[string]string{"alice": "alice@example.test", "bob": "bob@localhost"} {
		m := e.newMail(box)
		if len(m) != 1 {
			t.Fatalf("%s: %d messages", box, len(m))
		}
		if rest := afterFinal(t, m[0], "", to); !strings.HasPrefix(rest, "Received: from client.test") ||
			strings.Count(m[0], "Return-Path:") != 1 || !strings.HasSuffix(rest, "\r\nSubject: bounce\r\n\r\nx\r\n") {
			t.Errorf("%s: %q", box, m[0])
		}
	}

	s := e.submitter(Submission, "client.test")
	s.cmd("MAIL FROM:<alice@localhost>", 250)
	s.cmd("RCPT TO:<bob@example.test>", 250)
	s.send(bdatChunk("Subject: note\r\n\r\nhi\r\n", true))
	s.expect(250)
	m := e.newMail("bob")
	if len(m) != 2 {
		t.Fatalf("bob: %d messages", len(m))
	}
	found := false
	for _, msg := range m {
		if strings.Contains(msg, "Subject: note") {
			found = true
			afterFinal(t, msg, "alice@localhost", "bob@example.test")
		}
	}
	if !found {
		t.Errorf("submitted message not delivered: %q", m)
	}
}
