package smtpd

import (
	"net"
	"strings"
	"testing"
)

// Plaintext pipelined behind STARTTLS must never run after the handshake
// (CVE-2011-0411): the server closes the connection instead.
func TestPipelinedAfterSTARTTLSNotExecuted(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.cmd("EHLO client.test", 250)
	c.send("STARTTLS\r\nMAIL FROM:<a@b.test>\r\nRCPT TO:<alice@localhost>\r\n")
	code, text := c.read()
	if code == 220 {
		t.Fatalf("STARTTLS accepted with pipelined plaintext behind it: %q", text)
	}
	c.expectClosed()
}

func TestAuthNotBeforeTLS(t *testing.T) {
	e := startServer(t, nil)
	for _, k := range []Kind{MX, Submission} {
		c := e.dial(k)
		ehlo := c.cmd("EHLO client.test", 250)
		if strings.Contains(ehlo, "AUTH") {
			t.Errorf("%v: AUTH advertised before TLS: %q", k, ehlo)
		}
		if !strings.Contains(ehlo, "STARTTLS") {
			t.Errorf("%v: STARTTLS not advertised: %q", k, ehlo)
		}
		c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==", 538)
		c.starttls()
		ehlo = c.cmd("EHLO client.test", 250)
		if !strings.Contains(ehlo, "AUTH SCRAM-SHA-256 PLAIN LOGIN") || strings.Contains(ehlo, "STARTTLS") {
			t.Errorf("%v: EHLO under TLS: %q", k, ehlo)
		}
	}
}

func TestSubmissionRequiresTLSThenAuth(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(Submission)
	c.cmd("EHLO client.test", 250)
	if txt := c.cmd("MAIL FROM:<alice@localhost>", 530); !strings.Contains(txt, "5.7.0 Must issue a STARTTLS command first") {
		t.Errorf("got %q", txt)
	}
	c.starttls()
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<alice@localhost>", 530) // authentication required
}

func TestMXPolicies(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<x@y.test>", 250) // policy may: plaintext allowed
	c.cmd("RSET", 250)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go e.srv.Serve(ln, MX, TLSRequire)
	e.addrs[MX] = ln.Addr().String()
	c = e.dial(MX)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<x@y.test>", 530)
	c.starttls()
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<x@y.test>", 250) // MX needs no AUTH
	c.cmd("RCPT TO:<alice@localhost>", 250)
}

// RFC 3207 section 4.2: after TLS the client starts afresh.
func TestStateResetAfterSTARTTLS(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	c.starttls()
	c.cmd("MAIL FROM:<x@y.test>", 503) // no EHLO since TLS
	c.cmd("EHLO client.test", 250)
	c.cmd("RCPT TO:<alice@localhost>", 503) // the old transaction is gone
	c.cmd("STARTTLS", 503)                  // already under TLS
}

func TestSTARTTLSWithParameters(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.cmd("EHLO client.test", 250)
	c.cmd("STARTTLS now", 501)
}

func TestRecipientPolicy(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<alice@elsewhere.test>", 550)      // relay denied
	c.cmd("RCPT TO:<nobody@localhost>", 550)          // unknown user
	c.cmd("RCPT TO:<ALICE@Example.TEST>", 250)        // case-insensitive
	c.cmd("RCPT TO:<\"alice\"@localhost>", 550)       // quoted local parts are nobody
	c.cmd("RCPT TO:<@relay.test:bob@localhost>", 250) // source route ignored
	c.cmd("RCPT TO:alice@localhost", 501)
	c.cmd("VRFY alice", 252)
	c.cmd("EXPN staff", 502)
	c.cmd("HELP", 214)
	c.cmd("NOOP", 250)
	c.cmd("QUIT", 221)
}

func TestAddresses(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<\xff\xfe@y.test>", 553)                    // invalid UTF-8
	c.cmd("MAIL FROM:<jörg@y.test>", 553)                        // UTF-8 without SMTPUTF8
	c.cmd("MAIL FROM:<jörg@y.test> SMTPUTF8 BODY=8BITMIME", 250) // RFC 6531
	c.cmd("RCPT TO:<\xc3@localhost>", 553)
	c.cmd("RCPT TO:<jörg@localhost>", 550) // valid, but no such user
	c.cmd("RSET", 250)
	c.cmd("MAIL FROM:<x@y.test> BODY=BINARYMIME", 555)
	c.cmd("MAIL FROM:<x@y.test> FOO=BAR", 555)
	c.cmd("MAIL FROM:<> RET=HDRS ENVID=abc", 250)
	c.cmd("RCPT TO:<alice@localhost> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@localhost", 250)
}

func TestHeloOnly(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.cmd("MAIL FROM:<x@y.test>", 503) // no HELO yet
	c.cmd("HELO client.test", 250)
	c.cmd("MAIL FROM:<x@y.test> SIZE=10", 555) // no parameters without EHLO
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("MAIL FROM:<x@y.test>", 503) // nested
	c.cmd("EHLO bad host", 501)
}
