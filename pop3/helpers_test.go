package pop3

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/sasl"
)

// capa answers a CAPA command with the lines given.
func capa(s *wiretest.Peer, lines ...string) {
	s.Expect("CAPA")
	s.Send("+OK\r\n" + strings.Join(lines, "\r\n") + "\r\n.\r\n")
}

// scripted runs script against the first connection to a loopback listener;
// implicit makes the server start TLS first.
func scripted(t *testing.T, implicit bool, script func(s *wiretest.Peer)) string {
	t.Helper()
	addr, _, _ := wiretest.Scripted(t, func(s *wiretest.Peer) {
		if implicit {
			s.StartTLS()
		}
		script(s)
	})
	return addr
}

// opts are client options trusting the test certificate.
func opts(o Options) *Options {
	o.TLS.RootCAs = wiretest.Pool()
	o.TLS.ServerName = "localhost"
	o.CommandTimeout = 5 * time.Second
	return &o
}

var carol = &sasl.Credentials{Username: "carol", Password: "s3cret-Pa55"}

func codeIs(t *testing.T, err error, want mailsec.Code) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v (code %v), want code %v", err, mailsec.CodeOf(err), want)
	}
}

// loginTLS is the common opening of a POP3S session with USER/PASS.
func loginTLS(s *wiretest.Peer, lines ...string) {
	s.Send("+OK ready <1.2@test>\r\n")
	capa(s, lines...)
	s.Expect("USER carol")
	s.Send("+OK\r\n")
	s.Expect("PASS ")
	s.Send("+OK logged in\r\n")
}
