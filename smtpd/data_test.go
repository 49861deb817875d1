package smtpd

import (
	"strings"
	"testing"
	"time"
)

// mxTransaction opens an MX session with a transaction for alice.
func mxTransaction(e *testEnv) *client {
	c := e.dial(MX)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	return c
}

// SMTP smuggling (CVE-2023-51764): an end-of-data look-alike with a bare
// LF or CR must neither end the data nor let the smuggled command run; the
// whole message is refused.
func TestBareLFSmuggling(t *testing.T) {
	for name, fake := range map[string]string{
		"LF.LF":      "\n.\n",
		"CRLF.LF":    "\r\n.\n",
		"LF.CRLF":    "\n.\r\n",
		"CR.CR":      "\r.\r",
		"CRLF.CR":    "\r\n.\r",
		"bare CR":    "\r\n.\rX\r\n",
		"bare LF in": "\r\nab\ncd\r\n",
	} {
		t.Run(name, func(t *testing.T) { refusesSmuggling(t, fake, "bare LF") })
	}
}

// refusesSmuggling sends a message with fake, an end-of-data look-alike,
// followed by a smuggled transaction for bob and a real end marker. The
// message must be refused with a reply containing want, nothing stored,
// and the smuggled commands never run.
func refusesSmuggling(t *testing.T, fake, want string) {
	t.Helper()
	e := startServer(t, nil)
	c := mxTransaction(e)
	c.cmd("DATA", 354)
	c.send("Subject: first\r\n\r\nbody" + fake +
		"MAIL FROM:<evil@y.test>\r\nRCPT TO:<bob@localhost>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n")
	if txt := c.expect(554); !strings.Contains(txt, want) {
		t.Errorf("reply %q", txt)
	}
	// The session is in step: the next reply answers our NOOP,
	// not a smuggled command.
	c.cmd("NOOP", 250)
	if m := e.newMail("alice"); len(m) != 0 {
		t.Errorf("alice got %d messages", len(m))
	}
	if m := e.newMail("bob"); len(m) != 0 {
		t.Errorf("smuggled message delivered to bob: %q", m)
	}
	if n := e.tmpFiles("alice"); n != 0 {
		t.Errorf("%d files left in tmp/", n)
	}
}

// Dot-stuffing is undone, a line that is only "." ends the data, and the
// message lands byte for byte behind one Received header.
func TestDeliveryByteForByte(t *testing.T) {
	e := startServer(t, nil)
	c := mxTransaction(e)
	c.cmd("RCPT TO:<bob@localhost>", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250) // duplicate: one copy
	c.cmd("DATA", 354)
	body := "Subject: t\r\n\r\n..leading dot\r\n.\tx\r\n\r\n8bit: \xc3\xa9\r\n"
	c.send(body + ".\r\n")
	c.expect(250)
	for _, u := range []string{"alice", "bob"} {
		m := e.newMail(u)
		if len(m) != 1 {
			t.Fatalf("%s: %d messages", u, len(m))
		}
		hdr, rest, ok := strings.Cut(afterFinal(t, m[0], "x@y.test", u+"@localhost"), "\r\nSubject: t")
		if !ok || !strings.HasPrefix(hdr, "Received: from client.test ([127.0.0.1])\r\n\tby mx.test (mailsec) with ESMTP id ") {
			t.Fatalf("%s: message %q", u, m[0])
		}
		if strings.Contains(hdr, "for <") {
			t.Errorf("for clause with several recipients: %q", hdr)
		}
		// RFC 5321 section 4.5.2: the first dot of a line is removed.
		want := "Subject: t\r\n\r\n.leading dot\r\n\tx\r\n\r\n8bit: \xc3\xa9\r\n"
		if got := "Subject: t" + rest; got != want {
			t.Errorf("%s: body %q", u, got)
		}
	}
}

// A command line of 10 MiB is refused without buffering it and the
// session goes on.
func TestHugeCommandLine(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	go c.send("NOOP " + strings.Repeat("x", 10<<20) + "\r\n")
	if txt := c.expect(500); !strings.Contains(txt, "5.5.2 Line too long") {
		t.Errorf("reply %q", txt)
	}
	c.cmd("NOOP", 250)
	c.cmd("NOOP "+strings.Repeat("y", 600), 500) // over RFC 5321's 512
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<x@y.test> ENVID="+strings.Repeat("e", 90)+" SIZE=100 RET=HDRS AUTH=<>", 250)
}

func TestLongTextLine(t *testing.T) {
	e := startServer(t, nil)
	c := mxTransaction(e)
	c.cmd("DATA", 354)
	c.send("Subject: long\r\n\r\n" + strings.Repeat("z", 999) + "\r\n" + strings.Repeat("z", 200000) + "\r\n.\r\n")
	if txt := c.expect(554); !strings.Contains(txt, "1000") {
		t.Errorf("reply %q", txt)
	}
	c.cmd("NOOP", 250)
	if len(e.newMail("alice")) != 0 {
		t.Error("message with an over-long line delivered")
	}
}

// The dot doubled for transparency is not part of the line (RFC 5321
// section 4.5.3.1.6): a 998-octet line starting with a dot is 999 octets
// on the wire and must be taken, one more is refused.
func TestLongLineWithStuffedDot(t *testing.T) {
	e := startServer(t, nil)
	c := mxTransaction(e)
	c.cmd("DATA", 354)
	line := "." + strings.Repeat("d", 997)
	c.send("Subject: dots\r\n\r\n." + line + "\r\n.\r\n")
	c.expect(250)
	got := e.newMail("alice")
	if len(got) != 1 || !strings.Contains(got[0], "\n"+line+"\r\n") && !strings.Contains(got[0], "\n"+line+"\n") {
		t.Fatalf("delivered %d messages; the 998-octet dot line is missing", len(got))
	}
	c = mxTransaction(e)
	c.cmd("DATA", 354)
	c.send("Subject: dots\r\n\r\n." + line + "d\r\n.\r\n")
	c.expect(554)
}

func TestSizeLimit(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.MaxMessageSize = 1000 })
	c := e.dial(MX)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<x@y.test> SIZE=1001", 552)
	c.cmd("MAIL FROM:<x@y.test> SIZE=500", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	c.cmd("DATA", 354)
	c.send(strings.Repeat("0123456789abcdef\r\n", 100) + ".\r\n")
	if txt := c.expect(552); !strings.Contains(txt, "5.3.4") {
		t.Errorf("reply %q", txt)
	}
	c.cmd("NOOP", 250)
	if len(e.newMail("alice")) != 0 || e.tmpFiles("alice") != 0 {
		t.Error("oversized message stored")
	}
}

// A client vanishing in the middle of DATA leaves nothing behind.
func TestDisconnectMidData(t *testing.T) {
	e := startServer(t, nil)
	c := mxTransaction(e)
	c.cmd("DATA", 354)
	c.send("Subject: cut\r\n\r\n" + strings.Repeat("line\r\n", 10000))
	c.conn.Close()
	time.Sleep(200 * time.Millisecond)
	if len(e.newMail("alice")) != 0 || e.tmpFiles("alice") != 0 {
		t.Error("partial message left")
	}
}

func TestDataWithoutEndTimesOut(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.CommandTimeout = 300 * time.Millisecond })
	c := mxTransaction(e)
	c.cmd("DATA", 354)
	c.send("Subject: never ends\r\n\r\nbody\r\n")
	start := time.Now()
	c.expect(421)
	c.expectClosed()
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("timeout took %v", d)
	}
	if len(e.newMail("alice")) != 0 || e.tmpFiles("alice") != 0 {
		t.Error("partial message left")
	}
}

// DATA sent a byte at a time is cut by DataTimeout even though every read
// makes progress.
func TestDataSlowloris(t *testing.T) {
	e := startServer(t, func(s *Server) {
		s.Limits.CommandTimeout = 300 * time.Millisecond
		s.Limits.DataTimeout = 700 * time.Millisecond
	})
	c := mxTransaction(e)
	c.cmd("DATA", 354)
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				c.conn.Write([]byte("x"))
			}
		}
	}()
	start := time.Now()
	c.expect(421)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("slowloris held the session for %v", d)
	}
}

// A command trickled a byte at a time is cut at CommandTimeout.
func TestCommandSlowloris(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.CommandTimeout = 400 * time.Millisecond })
	c := e.dial(MX)
	start := time.Now()
	go func() {
		for i := 0; i < 100; i++ {
			if _, err := c.conn.Write([]byte("N")); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	c.expect(421)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("cut after %v", d)
	}
}

func TestBDAT(t *testing.T) {
	e := startServer(t, nil)
	c := mxTransaction(e)
	c.send("BDAT 14\r\nSubject: b\r\n\r\n")
	c.expect(250)
	c.cmd("DATA", 503) // RFC 3030: no DATA after BDAT
	c.send("BDAT 7 LAST\r\nhello\r\n")
	c.expect(250)
	m := e.newMail("alice")
	if len(m) != 1 || !strings.HasPrefix(afterFinal(t, m[0], "x@y.test", "alice@localhost"), "Received: ") || !strings.Contains(m[0], "\tfor <alice@localhost>;\r\n") ||
		!strings.HasSuffix(m[0], " +0000\r\nSubject: b\r\n\r\nhello\r\n") && !strings.Contains(m[0], "\r\nSubject: b\r\n\r\nhello\r\n") {
		t.Fatalf("got %q", m)
	}
	// A bare LF in a chunk refuses the message; the chunk is still consumed.
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<bob@localhost>", 250)
	c.send("BDAT 7 LAST\r\nab\ncd\r\n")
	c.expect(554)
	c.cmd("NOOP", 250)
	c.send("BDAT 3\r\nabc")
	c.expect(503) // no transaction; the chunk was skipped
	c.cmd("NOOP", 250)
	if len(e.newMail("bob")) != 0 {
		t.Error("refused BDAT message stored")
	}
}
