package smtpd

import (
	"encoding/base64"
	"net/smtp"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/srvconn"
	"github.com/mailsec/mailsec/sasl"
)

// authenticate runs mech with the sasl package's client over c.
func authenticate(t *testing.T, c *client, mech, user, password string, want int) {
	t.Helper()
	cl, err := sasl.NewClient(mech, sasl.Credentials{Username: user, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	st := c.conn.(interface {
		ConnectionState() tlsState
	}).ConnectionState()
	ir, err := cl.Start(sasl.ConnState{TLS: &st})
	if err != nil {
		t.Fatal(err)
	}
	line := "AUTH " + mech
	if ir != nil {
		line += " " + encode(ir)
	}
	c.send(line + "\r\n")
	for {
		code, text := c.read()
		if code != 334 {
			if code != want {
				t.Fatalf("%s: want %d, got %d %q", mech, want, code, text)
			}
			return
		}
		chal, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(text, "334 "))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cl.Next(chal)
		if err != nil {
			t.Fatalf("%s client: %v", mech, err)
		}
		c.send(encode(resp) + "\r\n")
	}
}

func encode(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// submit opens a submission session under TLS, ready for AUTH.
func submit(e *testEnv) *client {
	c := e.dial(Submission)
	c.cmd("EHLO client.test", 250)
	c.starttls()
	c.cmd("EHLO client.test", 250)
	return c
}

func TestAuthMechanismsAndDelivery(t *testing.T) {
	e := startServer(t, nil)
	for i, mech := range []string{"PLAIN", "LOGIN", "SCRAM-SHA-256"} {
		c := submit(e)
		authenticate(t, c, mech, "alice", "secret", 235)
		c.cmd("AUTH PLAIN", 503) // already authenticated
		c.cmd("MAIL FROM:<alice@localhost>", 250)
		c.cmd("RCPT TO:<bob@localhost>", 250)
		c.cmd("DATA", 354)
		// Complete, so that the submission server adds nothing.
		hdr := "Subject: " + mech + "\r\nDate: Thu, 03 Dec 2026 15:00:00 +0000\r\nMessage-ID: <" + mech + "@client.test>\r\n"
		c.send(hdr + "\r\nhi\r\n.\r\n")
		c.expect(250)
		m := e.newMail("bob")
		if len(m) != i+1 {
			t.Fatalf("%s: %d messages", mech, len(m))
		}
		found := false
		for _, msg := range m {
			if strings.HasSuffix(msg, "\r\n"+hdr+"\r\nhi\r\n") &&
				strings.Contains(msg, "(using TLS1.3 with cipher TLS_") && strings.Contains(msg, "with ESMTPSA id") {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: message not as sent: %q", mech, m)
		}
	}
}

func TestAuthFailures(t *testing.T) {
	e := startServer(t, nil)
	c := submit(e)
	c.cmd("AUTH PLAIN *", 501) // cancelled (RFC 4954 section 4)
	c.cmd("AUTH PLAIN", 334)
	c.cmd("*", 501)
	c.cmd("AUTH CRAM-MD5", 504)
	c.cmd("AUTH PLAIN !!!", 501)
	authenticate(t, c, "PLAIN", "alice", "wrong", 535)
	authenticate(t, c, "SCRAM-SHA-256", "nobody", "wrong", 535)
	authenticate(t, c, "LOGIN", "alice", "wrong", 421) // third failure
	c.expectClosed()
}

func TestAuthBackoff(t *testing.T) {
	l := Limits{AuthFailureDelay: 100}.withDefaults()
	authDelay := func(n int) time.Duration { return srvconn.Backoff(l.AuthFailureDelay, n) }
	if authDelay(1) != 100 || authDelay(3) != 400 || authDelay(50) != 3200 {
		t.Errorf("delays %v %v %v", authDelay(1), authDelay(3), authDelay(50))
	}
}

// Go's net/smtp as an independent peer: STARTTLS, AUTH PLAIN, delivery.
func TestNetSMTPClient(t *testing.T) {
	e := startServer(t, nil)
	c, err := smtp.Dial(e.addrs[Submission])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, cli := testTLS()
	if err := c.StartTLS(cli); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", "alice", "secret", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("alice@localhost"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@example.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: net/smtp\nDate: Thu, 03 Dec 2026 15:00:00 +0000\nMessage-ID: <1@client.test>\n\n.dot line\nend\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
	m := e.newMail("bob")
	if len(m) != 1 || !strings.HasSuffix(m[0], "\r\nSubject: net/smtp\r\nDate: Thu, 03 Dec 2026 15:00:00 +0000\r\nMessage-ID: <1@client.test>\r\n\r\n.dot line\r\nend\r\n") {
		t.Fatalf("got %q", m)
	}
}
