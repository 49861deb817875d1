package smtpd

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/srvconn/srvconntest"
)

// Every refusal is logged once, at INFO, with the client's address, the
// command (verb and harmless argument), the reply code and the enhanced
// code, as Postfix's "NOQUEUE: reject" lines; never a password, a SASL
// response, a message's content, or an unknown verb (which could be a
// secret sent out of step).
func TestRefusalsLogged(t *testing.T) {
	var log srvconntest.Log
	e := startServer(t, func(s *Server) { s.Logger = log.Logger() })
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret"))
	c := e.dial(MX)
	c.cmd("XYZZY secret", 500)
	c.cmd("AUTH PLAIN "+plain, 538) // before TLS
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<x@y.test> SIZE=999999999999", 552)
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<nobody@localhost>", 550)
	c.cmd("RCPT TO:<bob@elsewhere.test>", 550)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	c.cmd("DATA", 354)
	c.send("Subject: confidential\r\n\r\nab\ncd\r\n.\r\n")
	c.expect(554)
	c.send("NOOP\nsecret\r\n")
	c.expect(500)
	c.cmd("QUIT", 221)

	s := e.dial(Submission)
	s.cmd("EHLO client.test", 250)
	s.cmd("MAIL FROM:<alice@localhost>", 530)
	s.starttls()
	s.cmd("EHLO client.test", 250)
	s.cmd("AUTH LOGIN", 334)
	s.cmd(base64.StdEncoding.EncodeToString([]byte("alice")), 334)
	s.cmd(base64.StdEncoding.EncodeToString([]byte("hunter2")), 535)
	s.cmd("QUIT", 221)

	want := []srvconntest.Refusal{
		{Command: "?", Code: "500", Enh: "5.5.1"},
		{Command: "AUTH PLAIN", Code: "538", Enh: "5.7.11"},
		{Command: "MAIL FROM:<x@y.test> SIZE=999999999999", Code: "552", Enh: "5.3.4"},
		{Command: "RCPT TO:<nobody@localhost>", Code: "550", Enh: "5.1.1", From: "<x@y.test>"},
		{Command: "RCPT TO:<bob@elsewhere.test>", Code: "550", Enh: "5.7.1", From: "<x@y.test>"},
		{Command: "DATA", Code: "554", Enh: "5.6.0", From: "<x@y.test>"},
		{Command: "", Code: "500", Enh: "5.5.2"}, // a line with a bare LF is no command
		{Command: "MAIL FROM:<alice@localhost>", Code: "530", Enh: "5.7.0"},
		{Command: "AUTH LOGIN", Code: "535", Enh: "5.7.8"},
	}
	log.Expect(t, want, "secret", "hunter2", base64.StdEncoding.EncodeToString([]byte("hunter2")), plain, "confidential")
}

// The session's own refusals are logged too: too many errors, and a
// connection turned away.
func TestRefusalsLoggedBySession(t *testing.T) {
	var log srvconntest.Log
	e := startServer(t, func(s *Server) { s.Logger = log.Logger(); s.Limits.MaxPerIP = 1 })
	c := e.dial(MX) // holds the one session the address may have
	busy, err := dialRaw(e.addrs[MX])
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	buf := make([]byte, 512)
	n, _ := busy.Read(buf)
	if !strings.HasPrefix(string(buf[:n]), "421 4.7.0") {
		t.Fatalf("over MaxPerIP: %q", buf[:n])
	}
	c.send(strings.Repeat("HELP me\r\nRSET x\r\n", maxErrors))
	for range maxErrors {
		c.expect(214)
		c.expect(501)
	}
	c.expect(421)
	c.expectClosed()
	got := log.Refusals(t)
	if len(got) != maxErrors+2 {
		t.Fatalf("%d refusals logged, want %d:\n%v", len(got), maxErrors+2, got)
	}
	if got[0] != (srvconntest.Refusal{Command: "CONNECT", Code: "421", Enh: "4.7.0"}) ||
		got[1] != (srvconntest.Refusal{Command: "RSET", Code: "501", Enh: "5.5.4"}) ||
		got[maxErrors+1] != (srvconntest.Refusal{Command: "RSET", Code: "421", Enh: "4.7.0"}) {
		t.Errorf("logged %v", got)
	}
}
