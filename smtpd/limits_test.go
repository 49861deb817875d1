package smtpd

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestTooManyRecipients(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<x@y.test>", 250)
	var b []byte
	for i := 0; i < 100; i++ {
		b = fmt.Appendf(b, "RCPT TO:<alice@localhost>\r\n")
	}
	c.send(string(b)) // pipelined (RFC 2920)
	for i := 0; i < 100; i++ {
		c.expect(250)
	}
	if txt := c.cmd("RCPT TO:<bob@localhost>", 452); txt != "452 4.5.3 Too many recipients" {
		t.Errorf("reply %q", txt)
	}
}

func TestPerIPLimit(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.MaxPerIP = 2 })
	e.dial(MX)
	e.dial(Submission)
	c, err := dialRaw(e.addrs[MX])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 100)
	n, _ := c.Read(buf)
	if got := string(buf[:n]); got[:9] != "421 4.7.0" {
		t.Errorf("third connection got %q", got)
	}
}

func TestTooManyErrors(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	for i := 0; i < maxErrors-1; i++ {
		c.cmd("BOGUS", 500)
	}
	c.send("BOGUS\r\n")
	c.expect(500)
	c.expect(421)
}

// Shutdown answers idle sessions with 421 4.3.2 at once and lets a
// message in transfer finish.
func TestShutdown(t *testing.T) {
	e := startServer(t, nil)
	idle := e.dial(MX)
	busy := mxTransaction(e)
	busy.cmd("DATA", 354)
	busy.send("Subject: in flight\r\n\r\n")
	done := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	if txt := idle.expect(421); txt != "421 4.3.2 Service shutting down, closing transmission channel" {
		t.Errorf("idle got %q", txt)
	}
	busy.send("body\r\n.\r\n")
	busy.expect(250)
	busy.send("NOOP\r\n")
	busy.expect(421)
	if err := <-done; err != nil {
		t.Error(err)
	}
	if len(e.newMail("alice")) != 1 {
		t.Error("in-flight message lost")
	}
}

// A session waiting inside an AUTH exchange is ended by Shutdown as one
// waiting for a command is: 421 4.3.2, not the reply to a timeout.
func TestShutdownDuringAuth(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(Submission)
	c.cmd("EHLO client.test", 250)
	c.starttls()
	c.cmd("EHLO client.test", 250)
	c.cmd("AUTH LOGIN", 334)
	done := make(chan error)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		done <- e.srv.Shutdown(ctx)
	}()
	if txt := c.expect(421); txt != "421 4.3.2 Service shutting down, closing transmission channel" {
		t.Errorf("got %q", txt)
	}
	if err := <-done; err != nil {
		t.Error(err)
	}
}
