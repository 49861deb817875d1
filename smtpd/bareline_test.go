package smtpd

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/srvconn/srvconntest"
)

// A command line ends only at CRLF (RFC 5321 section 2.3.8): a line
// holding a bare LF or a bare CR is refused whole with one 500 5.5.2 and
// no part of it runs. HELP afterwards proves there was exactly one reply:
// had the line been split, the reply to its second half would come before
// HELP's 214.
func TestBareCRLFInCommandLine(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.MaxPerIP = 100 })
	lines := map[string]string{
		"long with LF": "NOOP " + strings.Repeat("a", 300) + "\n" + strings.Repeat("b", 300) + "\r\n",
	}
	for name, line := range srvconntest.BareLinesOf([][2]string{{"NOOP", "QUIT"}, {"EHLO client.test", "MAIL FROM:<x@y.test>"}, {"STARTTLS", "EHLO evil.test"}}) {
		lines[name] = line
	}
	for name, line := range lines {
		t.Run(name, func(t *testing.T) {
			c := e.dial(MX)
			c.t = t
			refusedWhole(c, line)
			c.cmd("MAIL FROM:<x@y.test>", 503) // no EHLO ran
		})
	}
}

// refusedWhole sends line and expects one 500 5.5.2 for it, nothing more.
func refusedWhole(c *client, line string) {
	c.t.Helper()
	c.send(line)
	if txt := c.expect(500); !strings.Contains(txt, "5.5.2") {
		c.t.Errorf("%q: reply %q", line, txt)
	}
	c.cmd("HELP", 214)
}

// A line that ends in a bare LF has not ended: nothing is answered until
// its CRLF, and what comes before that CRLF (here QUIT) belongs to the
// refused line.
func TestBareLFAtEndOnly(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.send("NOOP\n")
	srvconntest.Unanswered(t, c.conn, c.r, 300*time.Millisecond)
	refusedWhole(c, "QUIT\r\n")
}

// Inside a pipelined group (RFC 2920) the spoilt line gets one reply in
// its place and the lines around it run: RCPT with a bare LF before DATA
// is neither a recipient nor DATA.
func TestBareLFInPipelinedGroup(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.send("EHLO client.test\r\nMAIL FROM:<x@y.test>\r\nRCPT TO:<alice@localhost>\nDATA\r\nDATA\r\nRSET\r\n")
	c.expect(250)
	c.expect(250)
	if txt := c.expect(500); !strings.Contains(txt, "5.5.2") {
		t.Errorf("reply %q", txt)
	}
	c.expect(503) // DATA: no recipient
	c.expect(250) // RSET
	c.cmd("HELP", 214)
	if m := e.newMail("alice"); len(m) != 0 {
		t.Errorf("stored %q", m)
	}
}

// The same in an AUTH exchange (RFC 4954 section 4): an initial response
// or a response line with a bare CR or LF is refused with one reply and
// does not log in.
func TestBareCRLFInAuth(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.MaxAuthFailures = 100 })
	user := base64.StdEncoding.EncodeToString([]byte("alice"))
	pass := base64.StdEncoding.EncodeToString([]byte("secret"))
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret"))
	for name, script := range map[string]func(c *client){
		"initial response": func(c *client) { refusedWhole(c, "AUTH PLAIN "+plain[:8]+"\n"+plain[8:]+"\r\n") },
		"after initial":    func(c *client) { refusedWhole(c, "AUTH PLAIN "+plain+"\nHELP\r\n") },
		"LOGIN user LF pass": func(c *client) {
			c.cmd("AUTH LOGIN", 334)
			refusedWhole(c, user+"\n"+pass+"\r\n")
		},
		"LOGIN pass CR": func(c *client) {
			c.cmd("AUTH LOGIN", 334)
			c.cmd(user, 334)
			refusedWhole(c, pass+"\r\r\n")
		},
		"PLAIN response LF": func(c *client) {
			c.cmd("AUTH PLAIN", 334)
			refusedWhole(c, "\n"+plain+"\r\n")
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := submit(e)
			c.t = t
			script(c)
			c.cmd("MAIL FROM:<alice@localhost>", 530) // not logged in
		})
	}
}

// After a message, DATA or BDAT, the next command line follows the same
// rule; a chunk ending in CR does not lend that CR to the next line.
func TestBareLFAfterMessage(t *testing.T) {
	e := startServer(t, nil)
	c := mxTransaction(e)
	c.send("DATA\r\n")
	c.expect(354)
	c.send("Subject: a\r\n\r\nbody\r\n.\r\n")
	c.expect(250)
	refusedWhole(c, "NOOP\nRSET\r\n")
	c = mxTransaction(e)
	c.send("BDAT 3\r\nab\r")
	c.expect(250)
	refusedWhole(c, "\nRSET\r\n")
	// The transaction goes on, and its lone CR refuses the message.
	c.cmd("BDAT 2 LAST\r\n", 554)
	if m := e.newMail("alice"); len(m) != 1 {
		t.Errorf("stored %d messages, want 1", len(m))
	}
}
