package pop3d

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/srvconn/srvconntest"
)

// A command line ends only at CRLF (RFC 1939 section 3): a line holding a
// bare LF or a bare CR is refused whole with one -ERR and no part of it
// runs. The probe after it proves there was exactly one response: had the
// line been split, the response to its second half would come first.
func TestBareCRLFInCommandLine(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.MaxPerIP = 100 })
	e.deliver("alice", msgDots)
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret"))
	lines := map[string]string{"AUTH split IR": "AUTH PLAIN " + plain[:8] + "\n" + plain[8:] + "\r\n"}
	for name, line := range srvconntest.BareLinesOf([][2]string{{"USER alice", "PASS secret"}, {"CAPA", "QUIT"}, {"AUTH PLAIN " + plain, "STAT"}}) {
		lines[name] = line
	}
	for name, line := range lines {
		t.Run(name, func(t *testing.T) {
			c := e.dial(POP3S)
			c.t = t
			refusedWhole(c, line)
			c.cmdErr("PASS secret") // no USER ran
			c.cmdErr("STAT")        // not logged in
		})
	}
}

// refusedWhole sends line and expects one -ERR for it, nothing more: the
// next response is CAPA's capability list.
func refusedWhole(c *client, line string) {
	c.t.Helper()
	c.send(line)
	if l := c.err(); !strings.Contains(l, "bare CR/LF") {
		c.t.Errorf("%q: response %q", line, l)
	}
	if capa := c.multi("CAPA"); !strings.HasPrefix(capa, "TOP\r\n") {
		c.t.Errorf("%q: a second response before CAPA's list: %q", line, capa)
	}
}

// A line ending in a bare LF has not ended: nothing is answered until its
// CRLF, and the QUIT before that CRLF belongs to the refused line.
func TestBareLFAtEndOnly(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(STLS)
	c.send("CAPA\n")
	srvconntest.Unanswered(t, c.conn, c.r, 300*time.Millisecond)
	refusedWhole(c, "QUIT\r\n")
	c.stls() // the session is still in step
}

// In the TRANSACTION state and in a pipelined group (RFC 2449 section
// 6.6): the spoilt line gets one -ERR in its place, the lines around it
// run, and DELE behind a bare LF deletes nothing.
func TestBareLFInPipelinedTransaction(t *testing.T) {
	e := startServer(t, nil)
	e.deliver("alice", msgDots, msgLong)
	c := e.login("alice")
	c.send("NOOP\r\nSTAT\nDELE 1\r\nSTAT\r\n")
	c.ok()
	c.err()
	if l := c.ok(); l != "+OK 2 "+itoa(len(msgDots)+len(msgLong)) {
		t.Errorf("STAT after the refused line: %q", l)
	}
	refusedWhole(c, "DELE 2\rDELE 1\r\n")
	c.cmdOK("QUIT")
	if ms, _ := e.store.List("alice"); len(ms) != 2 {
		t.Errorf("%d messages left, want 2", len(ms))
	}
}

// SASL response lines of AUTH (RFC 5034 section 4) follow the same rule.
func TestBareCRLFInAuthResponse(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.MaxAuthFailures = 100 })
	user := base64.StdEncoding.EncodeToString([]byte("alice"))
	pass := base64.StdEncoding.EncodeToString([]byte("secret"))
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret"))
	for name, script := range map[string]func(c *client){
		"LOGIN user LF pass": func(c *client) {
			c.cmdOK2("AUTH LOGIN")
			refusedWhole(c, user+"\n"+pass+"\r\n")
		},
		"LOGIN pass CR": func(c *client) {
			c.cmdOK2("AUTH LOGIN")
			c.cmdOK2(user)
			refusedWhole(c, pass+"\r\r\n")
		},
		"PLAIN LF first": func(c *client) {
			c.cmdOK2("AUTH PLAIN")
			refusedWhole(c, "\n"+plain+"\r\n")
		},
		"PLAIN LF last": func(c *client) {
			c.cmdOK2("AUTH PLAIN")
			refusedWhole(c, plain+"\nSTAT\r\n")
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := e.dial(POP3S)
			c.t = t
			script(c)
			c.cmdErr("STAT") // not logged in
		})
	}
}
