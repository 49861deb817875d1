package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/sasl"
)

// The attacks of a hostile server or of a man in the middle on the plain
// part of the session. Each checks the coded error and, where credentials
// were at stake, that no AUTH line ever reached the server.

var hostileCred = sasl.Credentials{Username: "u", Password: "hostile-s3cret"}

// noAUTH fails the test when the server received an AUTH command.
func noAUTH(t *testing.T, p *wiretest.Peer) {
	t.Helper()
	for _, l := range p.Got {
		if strings.HasPrefix(strings.ToUpper(l), "AUTH") {
			t.Fatalf("AUTH reached the server: %q", l)
		}
	}
}

// toTLS runs greeting, plain EHLO with plainExt and STARTTLS up to the
// handshake.
func toTLS(p *wiretest.Peer, plainExt string) {
	greet(p, "250-mx.test\r\n"+plainExt+"250 STARTTLS\r\n")
	p.Expect("STARTTLS")
	p.Send("220 2.0.0 go ahead\r\n")
	p.StartTLS()
}

func TestInjectionInLaterPacketBeforeServerHello(t *testing.T) {
	// The injected reply arrives after the 220 was read but before the
	// handshake: it becomes the first "TLS record", and the handshake
	// must fail rather than skip it.
	addr, p, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n")
		p.Expect("STARTTLS")
		p.Send("220 ready\r\n")
		time.Sleep(30 * time.Millisecond)
		p.Send("235 2.7.0 injected\r\n")
		time.Sleep(200 * time.Millisecond)
	})
	_, err := Dial(context.Background(), addr, clientOpts(Options{Auth: &hostileCred, Mechanism: "plain", CommandTimeout: 2 * time.Second}))
	if err == nil {
		t.Fatal("session opened over an injected pre-handshake reply")
	}
	if c := mailsec.CodeOf(err); c != mailsec.TLSProtocol && c != mailsec.TLS && c != mailsec.Protocol {
		t.Fatalf("error %v (code %v)", err, c)
	}
	<-done
	noAUTH(t, p)
}

func TestSTARTTLSRefusedUnderMandatoryMode(t *testing.T) {
	for _, code := range []string{"454 4.7.0 TLS not available", "502 5.5.1 no", "554 5.7.0 never"} {
		t.Run(code[:3], func(t *testing.T) {
			addr, p, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
				greet(p, "250-mx.test\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n")
				p.Expect("STARTTLS")
				p.Send(code + "\r\n")
				p.Expect("QUIT")
				p.Send("221 bye\r\n")
			})
			_, err := Dial(context.Background(), addr, clientOpts(Options{Auth: &hostileCred}))
			codeIs(t, err, mailsec.SMTPServer)
			if r := mailsec.ReplyOf(err); r == nil || r.Code/100 != int(code[0]-'0') {
				t.Fatalf("reply %+v", r)
			}
			<-done
			noAUTH(t, p)
		})
	}
}

func TestSTARTTLSRefusedUnderOptionalModeStaysPlain(t *testing.T) {
	// Domino's negotiated TLS: a server that offers STARTTLS and then
	// refuses it is not a server without STARTTLS; the session must not
	// quietly continue in plain text with credentials.
	addr, p, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n")
		p.Expect("STARTTLS")
		p.Send("454 4.7.0 later\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	_, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSStartTLSOptional, Auth: &hostileCred}))
	if err == nil {
		t.Fatal("a refused STARTTLS left an open session")
	}
	<-done
	noAUTH(t, p)
}

func TestAuthOfferedOnlyInPlain(t *testing.T) {
	addr, p, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		toTLS(p, "250-AUTH PLAIN LOGIN\r\n")
		p.Expect("EHLO")
		p.Send("250-mx.test\r\n250 8BITMIME\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	_, err := Dial(context.Background(), addr, clientOpts(Options{Auth: &hostileCred, Mechanism: "plain"}))
	codeIs(t, err, mailsec.AuthUnavailable)
	<-done
	noAUTH(t, p)
}

func TestSTARTTLSAdvertisedUnderTLS(t *testing.T) {
	// A server (or a bug) advertising STARTTLS again under TLS must not
	// lead to a second STARTTLS: AUTH follows at once.
	addr, p, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		toTLS(p, "")
		p.Expect("EHLO")
		p.Send("250-mx.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n")
		p.Expect("AUTH PLAIN ")
		p.Send("235 ok\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	c, err := Dial(context.Background(), addr, clientOpts(Options{Auth: &hostileCred, Mechanism: "plain"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	if len(p.Got) != 5 {
		t.Fatalf("commands %q", p.Got)
	}
}

func TestEHLOAfterTLSReplacesEverything(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		toTLS(p, "250-SIZE 1000\r\n250-PIPELINING\r\n250-CHUNKING\r\n")
		p.Expect("EHLO")
		p.Send("250-mx.test\r\n250 SIZE 99999\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	c, err := Dial(context.Background(), addr, clientOpts(Options{}))
	if err != nil {
		t.Fatal(err)
	}
	ext := c.Extensions()
	if len(ext) != 1 || ext["SIZE"] != "99999" {
		t.Fatalf("extensions after TLS %v: plain-text ones leaked", ext)
	}
	c.Quit(context.Background())
	<-done
}

func TestEHLO502AfterTLSKeepsTLS(t *testing.T) {
	addr, p, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		toTLS(p, "250-AUTH PLAIN\r\n")
		p.Expect("EHLO")
		p.Send("502 5.5.1 what\r\n")
		p.Expect("HELO")
		p.Send("250 mx.test\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	_, err := Dial(context.Background(), addr, clientOpts(Options{Auth: &hostileCred, Mechanism: "plain"}))
	// HELO has no AUTH: the cached plain-text AUTH must not make the
	// mechanism look available.
	codeIs(t, err, mailsec.AuthUnavailable)
	<-done
	noAUTH(t, p)

	addr, _, done = wiretest.Scripted(t, func(p *wiretest.Peer) {
		toTLS(p, "")
		p.Expect("EHLO")
		p.Send("502 5.5.1 what\r\n")
		p.Expect("HELO")
		p.Send("250 mx.test\r\n")
		p.Expect("MAIL FROM:<a@b.test>")
		p.Send("250 ok\r\n")
		p.Expect("RCPT")
		p.Send("250 ok\r\n")
		p.Expect("DATA")
		p.Send("354 go\r\n")
		for p.Expect("") != "." {
		}
		p.Send("250 ok\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	c, err := Dial(context.Background(), addr, clientOpts(Options{}))
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS() == nil {
		t.Fatal("HELO fallback lost TLS")
	}
	if _, err := c.Send(context.Background(), "a@b.test", []string{"c@d.test"}, strings.NewReader("x\r\n"), nil); err != nil {
		t.Fatal(err)
	}
	c.Quit(context.Background())
	<-done
}

func TestHostileReplies(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	var many strings.Builder
	for range 10000 {
		many.WriteString("250-x\r\n")
	}
	many.WriteString("250 end\r\n")
	cases := []struct {
		name, in string
		ok       bool
	}{
		{"mixed codes", "250-a\r\n251-b\r\n250 c\r\n", false},
		{"mixed class", "250-a\r\n550 c\r\n", false},
		{"code 000", "000 x\r\n", false},
		{"code 999", "999 x\r\n", false},
		{"code 199", "199 x\r\n", false},
		{"missing space", "250x\r\n", false},
		{"two digits", "25 x\r\n", false},
		{"CR only", strings.Repeat("250-a\r", 2000), false},
		{"100 KiB line", "250 " + long + "\r\n", false},
		{"10000 continuations", many.String(), false},
		{"NUL and 8-bit", "250 a\x00b\xff\r\n", true},
		{"bare code", "250\r\n", true},
		{"garbage enhanced", "550 5.9999.1 no\r\n", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := readReply(bufio.NewReaderSize(strings.NewReader(tc.in), 4096), nil)
			if tc.ok {
				if err != nil {
					t.Fatal(err)
				}
				if rep.Enhanced != "" {
					t.Fatalf("enhanced code %q from garbage", rep.Enhanced)
				}
				return
			}
			codeIs(t, err, mailsec.Protocol)
		})
	}
}

func TestReplyOneBytePerPacket(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		for _, b := range []byte("220-mx.test\r\n220 hi\r\n") {
			p.Send(string(b))
			time.Sleep(time.Millisecond)
		}
		p.Expect("EHLO")
		p.Send("250 x\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	c := dialPlain(t, addr)
	if g := c.Greeting(); g != "mx.test\nhi" {
		t.Fatalf("greeting %q", g)
	}
	c.Quit(context.Background())
	<-done
}

func TestEndlessMultilineReplyTimesOut(t *testing.T) {
	// A line every 50 ms keeps the connection busy forever within the
	// 256-line bound; the command deadline ends it.
	stop := make(chan struct{})
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		p.Send("220 mx.test\r\n")
		p.Expect("EHLO")
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				p.Send("250-x\r\n")
			}
		}
	})
	start := time.Now()
	_, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSNone, CommandTimeout: 400 * time.Millisecond}))
	close(stop)
	codeIs(t, err, mailsec.Timeout)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
	<-done
}

// authServer opens a TLS session offering mech and hands AUTH to script.
func authServer(t *testing.T, mech string, script func(p *wiretest.Peer)) (string, <-chan struct{}) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		p.StartTLS()
		greet(p, "250-mx.test\r\n250 AUTH "+mech+"\r\n")
		p.Expect("AUTH " + mech)
		script(p)
	})
	return addr, done
}

func TestAuthChallengeLoops(t *testing.T) {
	for _, mech := range []string{"PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER", "SCRAM-SHA-256"} {
		t.Run(mech, func(t *testing.T) {
			rounds := 0
			addr, done := authServer(t, mech, func(p *wiretest.Peer) {
				for range 50 {
					p.Send("334 " + base64.StdEncoding.EncodeToString([]byte("r=x,s=QSXCR+Q6sek8bf92,i=4096")) + "\r\n")
					if l := p.Expect(""); l == "*" || l == "" {
						p.Send("501 cancelled\r\n")
						return
					}
					rounds++
				}
			})
			cred := sasl.Credentials{Username: "u", Password: "p", Token: "t"}
			_, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSImplicit, Auth: &cred, Mechanism: mech, CommandTimeout: 2 * time.Second}))
			if err == nil {
				t.Fatal("endless challenges accepted")
			}
			<-done
			if rounds > 3 {
				t.Fatalf("answered %d challenges", rounds)
			}
		})
	}
}

func TestAuthChallengeNotBase64(t *testing.T) {
	addr, done := authServer(t, "LOGIN", func(p *wiretest.Peer) {
		p.Send("334 VXNlcm5hbWU6!!\r\n")
		p.Expect("*")
		p.Send("501 5.7.0 cancelled\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	_, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSImplicit, Auth: &hostileCred, Mechanism: "login"}))
	codeIs(t, err, mailsec.Protocol)
	<-done
}

func TestSCRAMIterationCounts(t *testing.T) {
	for _, iters := range []string{"0", "1000000000", "-1", "99999999999999999999"} {
		t.Run(iters, func(t *testing.T) {
			addr, done := authServer(t, "SCRAM-SHA-256", func(p *wiretest.Peer) {
				p.Send("334 " + base64.StdEncoding.EncodeToString([]byte("r=x,s=QSXCR+Q6sek8bf92,i="+iters)) + "\r\n")
				p.Expect("*")
				p.Send("501 cancelled\r\n")
			})
			start := time.Now()
			_, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSImplicit, Auth: &hostileCred, Mechanism: "scram-sha-256"}))
			codeIs(t, err, mailsec.Protocol)
			if d := time.Since(start); d > 5*time.Second {
				t.Fatalf("took %v", d)
			}
			<-done
		})
	}
}

func TestOAuthBearerHugeErrorJSON(t *testing.T) {
	addr, done := authServer(t, "OAUTHBEARER", func(p *wiretest.Peer) {
		js := `{"status":"invalid_token","x":"` + strings.Repeat("a", 1<<20) + `"}`
		p.Send("334 " + base64.StdEncoding.EncodeToString([]byte(js)) + "\r\n")
		time.Sleep(100 * time.Millisecond)
	})
	cred := sasl.Credentials{Username: "u", Token: "tok"}
	_, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSImplicit, Auth: &cred, Mechanism: "oauthbearer"}))
	codeIs(t, err, mailsec.Protocol)
	<-done
}

func TestTLS10OnlyServer(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11} {
		addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
			tc := tls.Server(p.Conn, &tls.Config{Certificates: []tls.Certificate{wiretest.Cert()}, MinVersion: v, MaxVersion: v})
			tc.Handshake()
		})
		_, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSImplicit}))
		codeIs(t, err, mailsec.TLSProtocol)
		<-done
	}
}

func TestCertificateForAnotherName(t *testing.T) {
	// A man in the middle (a proxy, say) presenting a valid certificate
	// for its own name: the name check is against the server asked for.
	cert, pool := wiretest.SelfSigned(t, "proxy.test")
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		tc := tls.Server(p.Conn, &tls.Config{Certificates: []tls.Certificate{cert}})
		tc.Handshake()
	})
	o := clientOpts(Options{TLSMode: TLSImplicit})
	o.TLS.RootCAs = pool
	o.TLS.ServerName = "mx.test"
	_, err := Dial(context.Background(), addr, o)
	codeIs(t, err, mailsec.TLSCertName)
	<-done
}

func TestTranscriptEscapesControls(t *testing.T) {
	// A server's words reach the user's terminal in the transcript: raw
	// escape sequences there could retitle it or rewrite what it shows.
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		p.Send("554 5.7.1 \x1b]0;pwned\x07\x1b[2J\x9bgone\r\n")
	})
	var tr strings.Builder
	_, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSNone, Transcript: &tr}))
	codeIs(t, err, mailsec.SMTPServer)
	<-done
	if strings.ContainsAny(tr.String(), "\x1b\x07\x9b") || !strings.Contains(tr.String(), `\x1b]0;pwned\x07`) {
		t.Fatalf("transcript %q", tr.String())
	}
}

func TestInjectionBeforeSTARTTLS(t *testing.T) {
	// The go-ahead rides ahead of the command, in the EHLO answer's packet:
	// read as the answer to STARTTLS, it would desynchronise the session.
	addr, p, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		p.Send("220 mx.test\r\n")
		p.Expect("EHLO")
		p.Send("250-mx.test\r\n250 STARTTLS\r\n220 ready\r\n")
		time.Sleep(100 * time.Millisecond)
	})
	_, err := Dial(context.Background(), addr, clientOpts(Options{Auth: &hostileCred, Mechanism: "plain"}))
	codeIs(t, err, mailsec.Protocol)
	<-done
	for _, l := range p.Got {
		if l == "STARTTLS" {
			t.Fatal("STARTTLS sent over a desynchronised session")
		}
	}
}
