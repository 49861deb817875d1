package smtp

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/security"
	"github.com/mailsec/mailsec/tlsconf"
)

func clientOpts(o Options) *Options {
	o.TLS.RootCAs = wiretest.Pool()
	o.TLS.ServerName = "localhost"
	o.LocalName = "client.test"
	return &o
}

func codeIs(t *testing.T, err error, want mailsec.Code) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v (code %v), want code %v", err, mailsec.CodeOf(err), want)
	}
}

// greet plays the preamble of most scripted sessions: the greeting, the
// client's EHLO and ehlo, the raw EHLO reply.
func greet(p *wiretest.Peer, ehlo string) {
	p.Send("220 mx.test\r\n")
	p.Expect("EHLO")
	p.Send(ehlo)
}

// dialPlain opens a plain-text session with a scripted server, failing the
// test if it cannot.
func dialPlain(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSNone}))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const ehloTLS = "250-mx.test\r\n250-PIPELINING\r\n250-AUTH PLAIN SCRAM-SHA-256\r\n250 8BITMIME\r\n"

func TestStartTLSThenAuthThenSend(t *testing.T) {
	cred := sasl.Credentials{Username: "u", Password: "p4ss-w0rd"}
	addr, p, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		p.Send("220 mx.test ESMTP\r\n")
		p.Expect("EHLO client.test")
		p.Send("250-mx.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n")
		p.Expect("STARTTLS")
		p.Send("220 2.0.0 go ahead\r\n")
		p.StartTLS()
		p.Expect("EHLO client.test") // the security context: capabilities queried again
		p.Send(ehloTLS)
		p.Expect("AUTH PLAIN ")
		p.Send("235 2.7.0 ok\r\n")
		p.Expect("MAIL FROM:<a@b.test> BODY=8BITMIME")
		p.Expect("RCPT TO:<c@d.test>")
		p.Expect("DATA")
		p.Send("250 2.1.0 ok\r\n250 2.1.5 ok\r\n354 go\r\n")
		var body strings.Builder
		for {
			l := p.Expect("")
			if l == "." {
				break
			}
			body.WriteString(l + "\n")
		}
		if got, want := body.String(), "Subject: x\n\n..dot\nbare\nlf\n"; got != want {
			t.Errorf("body %q, want %q", got, want)
		}
		p.Send("250 2.0.0 queued as X1\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	var transcript strings.Builder
	c, err := Dial(context.Background(), addr, clientOpts(Options{TLSMode: TLSStartTLS, Auth: &cred, Mechanism: "plain", Transcript: &transcript}))
	if err != nil {
		t.Fatal(err)
	}
	if c.TLS() == nil {
		t.Fatal("no TLS")
	}
	res, err := c.Send(context.Background(), "a@b.test", []string{"c@d.test"},
		strings.NewReader("Subject: x\n\n.dot\nbare\rlf"), &MailOptions{Body: Body8BitMIME})
	if err != nil {
		t.Fatal(err)
	}
	if res.Reply.Text() != "queued as X1" || res.Reply.Enhanced != "2.0.0" || !res.Pipelining {
		t.Errorf("result %+v", res)
	}
	if err := c.Quit(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	reports := c.Security().Reports()
	if len(reports) != 2 || reports[0].Status != security.StatusClosed || reports[1].Info["mechanism"] != "PLAIN" {
		t.Errorf("reports %+v", reports)
	}
	if strings.Contains(transcript.String(), "p4ss-w0rd") || strings.Contains(transcript.String(), "cDRzcy13MHJk") ||
		strings.Contains(transcript.String(), "AHUAcDRzcy13MHJk") {
		t.Errorf("transcript leaks the secret:\n%s", transcript.String())
	}
	if !strings.Contains(transcript.String(), "~> AUTH PLAIN [credentials redacted]") {
		t.Errorf("transcript:\n%s", transcript.String())
	}
	_ = p
}

func TestStartTLSMissingSendsNoCredentials(t *testing.T) {
	addr, p, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250 AUTH PLAIN LOGIN\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	cred := sasl.Credentials{Username: "u", Password: "secret"}
	_, err := Dial(context.Background(), addr, clientOpts(Options{Auth: &cred}))
	codeIs(t, err, mailsec.StartTLSUnavailable)
	<-done
	for _, l := range p.Got {
		if strings.HasPrefix(l, "AUTH") {
			t.Fatalf("credentials sent in plain: %q", l)
		}
	}
}

func TestResponseInjectionAfterSTARTTLS(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250 STARTTLS\r\n")
		p.Expect("STARTTLS")
		// The injected reply rides in the same packet as the 220.
		p.Send("220 ready\r\n250-mx.test\r\n250 AUTH PLAIN\r\n")
		time.Sleep(100 * time.Millisecond)
	})
	_, err := Dial(context.Background(), addr, clientOpts(Options{}))
	codeIs(t, err, mailsec.Protocol)
	<-done
}

func TestSecurityContextRules(t *testing.T) {
	// Optional STARTTLS skipped, then an optional unsupported mechanism
	// skipped, then a supported one opened: in plain text only with the
	// user's explicit consent.
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250 AUTH PLAIN\r\n")
		p.Expect("AUTH PLAIN")
		p.Send("235 ok\r\n")
		p.Expect("AUTH PLAIN") // the security context: two drivers, two attempts
		p.Send("503 5.5.1 already authenticated\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	cred := sasl.Credentials{Username: "u", Password: "p"}
	sc := &security.Context{}
	sc.Add(security.NewStartTLS(), security.Optional)
	sc.Add(security.NewAuth("SCRAM-SHA-256", cred), security.Optional)
	sc.Add(security.NewAuth("PLAIN", cred), security.Mandatory)
	sc.Add(security.NewAuth("PLAIN", cred), security.Mandatory)
	_, err := Dial(context.Background(), addr, clientOpts(Options{Security: sc, AllowPlaintextAuth: true}))
	codeIs(t, err, mailsec.SMTPServer)
	if r := mailsec.ReplyOf(err); r == nil || r.Code != 503 {
		t.Fatalf("reply %+v", r)
	}
	<-done
	st := []security.Status{}
	for _, r := range sc.Reports() {
		st = append(st, r.Status)
	}
	want := []security.Status{security.StatusSkipped, security.StatusSkipped, security.StatusClosed, security.StatusFailed}
	if len(st) != len(want) {
		t.Fatalf("statuses %v", st)
	}
	for i := range want {
		if st[i] != want[i] {
			t.Fatalf("statuses %v, want %v", st, want)
		}
	}
}

func TestHostileServers(t *testing.T) {
	cases := []struct {
		name   string
		script func(p *wiretest.Peer)
		want   mailsec.Code
	}{
		{"long line", func(p *wiretest.Peer) { p.Send("220 " + strings.Repeat("x", 100000) + "\r\n") }, mailsec.Protocol},
		{"garbage", func(p *wiretest.Peer) { p.Send("\xff\xfe\x00garbage\r\n") }, mailsec.Protocol},
		{"code changes", func(p *wiretest.Peer) { p.Send("220-a\r\n250 b\r\n") }, mailsec.Protocol},
		{"silent", func(p *wiretest.Peer) { time.Sleep(2 * time.Second) }, mailsec.Timeout},
		{"closes", func(p *wiretest.Peer) {}, mailsec.SocketRx},
		{"554 greeting", func(p *wiretest.Peer) { p.Send("554 5.7.1 go away\r\n") }, mailsec.SMTPServer},
		{"split reply", func(p *wiretest.Peer) {
			p.Send("22")
			time.Sleep(50 * time.Millisecond)
			p.Send("0 hi\r\n")
			p.Expect("EHLO")
			p.Send("250 x\r\n")
			p.Expect("QUIT")
		}, mailsec.StartTLSUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, _, done := wiretest.Scripted(t, tc.script)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			_, err := Dial(ctx, addr, clientOpts(Options{}))
			codeIs(t, err, tc.want)
			<-done
		})
	}
}

func TestCloseMidDATA(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250 mx.test\r\n")
		p.Expect("MAIL")
		p.Send("250 ok\r\n")
		p.Expect("RCPT")
		p.Send("250 ok\r\n")
		p.Expect("DATA")
		p.Send("354 go\r\n")
		p.Expect("")
	})
	c := dialPlain(t, addr)
	<-time.After(0)
	big := strings.NewReader(strings.Repeat("line of text\r\n", 1<<20))
	_, err := c.Send(context.Background(), "a@b.test", []string{"c@d.test"}, big, nil)
	if c := mailsec.CodeOf(err); c != mailsec.SocketTx && c != mailsec.SocketRx {
		t.Fatalf("error %v", err)
	}
	<-done
}

func TestWrongNameAndUnknownCA(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts tlsconf.Options
		want mailsec.Code
	}{
		{"name", tlsconf.Options{RootCAs: wiretest.Pool(), ServerName: "other.test"}, mailsec.TLSCertName},
		{"ca", tlsconf.Options{RootCAs: x509.NewCertPool(), ServerName: "localhost"}, mailsec.TLSCertificate},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) { p.StartTLS() })
			_, err := Dial(context.Background(), addr, &Options{TLSMode: TLSImplicit, TLS: tc.opts})
			codeIs(t, err, tc.want)
			<-done
		})
	}
}

func TestPartialRecipientsAbortByDefault(t *testing.T) {
	addr, p, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250 CHUNKING\r\n")
		p.Expect("MAIL")
		p.Send("250 ok\r\n")
		p.Expect("RCPT TO:<a@x.test>")
		p.Send("250 ok\r\n")
		p.Expect("RCPT TO:<b@x.test>")
		p.Send("550 5.1.1 no such user\r\n")
		p.Expect("RSET")
		p.Send("250 ok\r\n")
	})
	c := dialPlain(t, addr)
	_, err := c.Send(context.Background(), "s@x.test", []string{"a@x.test", "b@x.test"}, strings.NewReader("x"), nil)
	codeIs(t, err, mailsec.SMTPServer)
	if r := mailsec.ReplyOf(err); r.Code != 550 || r.Enhanced != "5.1.1" {
		t.Fatalf("reply %+v", r)
	}
	<-done
	for _, l := range p.Got {
		if strings.HasPrefix(l, "BDAT") {
			t.Fatal("message sent despite a refused recipient")
		}
	}
}

func TestAddressInjectionRefused(t *testing.T) {
	for _, a := range []string{"x@y>\r\nRCPT TO:<z@w", "a b@c", "a@b\x00", "\xff@x"} {
		if _, err := checkAddress(a, false); !errors.Is(err, mailsec.Data) {
			t.Errorf("%q accepted", a)
		}
	}
}

func TestRefusedConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Dial(context.Background(), addr, clientOpts(Options{}))
	codeIs(t, err, mailsec.TCPConnect)
}

func TestTLSVersionMismatch(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		tc := tls.Server(p.Conn, &tls.Config{Certificates: []tls.Certificate{wiretest.Cert()}, MaxVersion: tls.VersionTLS12})
		tc.Handshake()
	})
	o := clientOpts(Options{TLSMode: TLSImplicit})
	o.TLS.MinVersion = tls.VersionTLS13
	_, err := Dial(context.Background(), addr, o)
	codeIs(t, err, mailsec.TLSProtocol)
	<-done
}
