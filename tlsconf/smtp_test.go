package tlsconf_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/smtp"
	"github.com/mailsec/mailsec/tlsconf"
)

// starttlsServer is a scripted SMTP server for one session: it offers
// STARTTLS, serves cert in the handshake and sends what it read under TLS
// on the returned channel when the session ends.
func starttlsServer(t *testing.T, cert tls.Certificate) (string, <-chan []string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	done := make(chan []string, 1)
	go func() {
		var underTLS []string
		defer func() { done <- underTLS }()
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(conn)
		say := func(s string) { conn.Write([]byte(s)) }
		read := func() string {
			line, _ := r.ReadString('\n')
			return strings.TrimRight(line, "\r\n")
		}
		say("220 scripted ESMTP\r\n")
		if !strings.HasPrefix(read(), "EHLO ") {
			return
		}
		say("250-scripted\r\n250 STARTTLS\r\n")
		if read() != "STARTTLS" {
			return
		}
		say("220 go ahead\r\n")
		tc := tls.Server(conn, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.Handshake() != nil {
			return
		}
		r = bufio.NewReader(tc)
		conn = tc
		for {
			line := read()
			if line == "" {
				return
			}
			underTLS = append(underTLS, line)
			switch {
			case strings.HasPrefix(line, "EHLO "):
				say("250 scripted\r\n")
			case line == "QUIT":
				say("221 bye\r\n")
				return
			default:
				say("502 not in this script\r\n")
			}
		}
	}()
	return l.Addr().String(), done
}

// The whole path: the SMTP client's STARTTLS handshake checks revocation
// and refuses a revoked server before it says anything under TLS.
func TestRevocationThroughSMTPClient(t *testing.T) {
	p := newPKI(t)
	revoked := p.leaf(p.inter, p.url("/ocsp/good"), nil)
	p.revoke(revoked.Leaf, 1)
	good := p.leaf(p.inter, nil, []string{p.crlURL(p.inter, "")})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := func() *smtp.Options {
		return &smtp.Options{TLSMode: smtp.TLSStartTLS, LocalName: "client.test",
			TLS: tlsconf.Options{RootCAs: p.roots, ServerName: "localhost", Revocation: tlsconf.Revocation{Cache: tlsconf.NewRevocationCache(8)}}}
	}

	addr, seen := starttlsServer(t, revoked)
	c, err := smtp.Dial(ctx, addr, opts())
	if err == nil {
		c.Close()
		t.Fatal("the client accepted a revoked certificate")
	}
	if !errors.Is(err, mailsec.TLSCertificate) || !strings.Contains(err.Error(), "is revoked according to the OCSP responder") {
		t.Errorf("err = %v, want a TLSCertificate error saying revoked", err)
	}
	if got := <-seen; len(got) != 0 {
		t.Errorf("the client said %q under TLS to a revoked server", got)
	}

	addr, seen = starttlsServer(t, good)
	c, err = smtp.Dial(ctx, addr, opts())
	if err != nil {
		t.Fatal(err)
	}
	facts := tlsconf.FactsOf(c.TLS())
	if err := c.Quit(ctx); err != nil {
		t.Error(err)
	}
	if len(facts.Revocation) == 0 || facts.Revocation[0].Status != tlsconf.StatusGood || facts.Revocation[0].Source != tlsconf.SourceCRL {
		t.Errorf("revocation facts %+v, want the leaf good from the CRL", facts.Revocation)
	}
	if got := <-seen; len(got) != 2 || got[1] != "QUIT" {
		t.Errorf("under TLS the server read %q, want EHLO and QUIT", got)
	}
}

// STARTTLS run by hand after Dial returned (as mailsec probe does): the
// revocation fetches take the handshake's context, not Dial's, which is
// over by then.
func TestRevocationStartTLSAfterDial(t *testing.T) {
	p := newPKI(t)
	revoked := p.leaf(p.inter, p.url("/ocsp/good"), nil)
	p.revoke(revoked.Leaf, 1)
	addr, _ := starttlsServer(t, revoked)
	dctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	c, err := smtp.Dial(dctx, addr, &smtp.Options{TLSMode: smtp.TLSNone, LocalName: "client.test",
		TLS: tlsconf.Options{RootCAs: p.roots, ServerName: "localhost", Revocation: tlsconf.Revocation{Cache: tlsconf.NewRevocationCache(8)}}})
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	err = c.StartTLS(ctx)
	if !errors.Is(err, mailsec.TLSCertificate) || !strings.Contains(err.Error(), "is revoked according to the OCSP responder") {
		t.Fatalf("err = %v, want the leaf refused as revoked (not the status unknown for a spent context)", err)
	}
}
