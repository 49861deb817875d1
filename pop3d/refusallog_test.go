package pop3d

import (
	"encoding/base64"
	"testing"

	"github.com/mailsec/mailsec/internal/srvconn/srvconntest"
)

// Every -ERR is logged once, at INFO, with the client's address, the
// command (verb and harmless arguments) and the response code; never a
// password, a SASL response or an unknown verb (which could be a secret
// sent out of step).
func TestRefusalsLogged(t *testing.T) {
	var log srvconntest.Log
	e := startServer(t, func(s *Server) { s.Logger = log.Logger() })
	e.deliver("alice", msgDots)
	wrong := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00hunter2"))
	plain := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00secret"))

	p := e.dial(STLS)
	p.cmdErr("USER alice") // before TLS
	p.cmdErr("AUTH PLAIN " + plain)
	p.cmdOK("QUIT")

	c := e.dial(POP3S)
	c.cmdErr("XYZZY secret")
	c.cmdOK("USER alice")
	c.cmdErr("PASS hunter2")
	c.cmdErr("AUTH PLAIN " + wrong)
	c.cmdErr("STAT")
	c.cmdOK("USER alice")
	c.cmdOK("PASS secret")
	c.cmdErr("RETR 9")
	c.cmdOK("QUIT")

	want := []srvconntest.Refusal{
		{Command: "USER alice", Code: "-ERR"},
		{Command: "AUTH PLAIN", Code: "-ERR"},
		{Command: "?", Code: "-ERR"},
		{Command: "PASS", Code: "-ERR", Enh: "AUTH"},
		{Command: "AUTH PLAIN", Code: "-ERR", Enh: "AUTH"},
		{Command: "STAT", Code: "-ERR"},
		{Command: "RETR 9", Code: "-ERR"},
	}
	log.Expect(t, want, "secret", "hunter2", plain, wrong)
}
