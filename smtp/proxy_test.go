package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/dial"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/security"
)

func TestLoginProxy(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		p.Send("220 proxy.test ESMTP\r\n")
		p.Expect("EHLO client.test")
		p.Send("250-proxy.test\r\n250 STARTTLS\r\n")
		p.Expect("STARTTLS")
		p.Send("220 go ahead\r\n")
		p.StartTLS()
		p.Expect("EHLO client.test")
		p.Send("250-proxy.test\r\n250 AUTH PLAIN\r\n")
		line := p.Expect("AUTH PLAIN ")
		raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "AUTH PLAIN "))
		if want := "\x00alice@mail.example.test:2587\x00pw"; string(raw) != want {
			t.Errorf("login %q, want %q", raw, want)
		}
		p.Send("235 ok\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	var tr strings.Builder
	o := clientOpts(Options{TLSMode: TLSStartTLS, Auth: &sasl.Credentials{Username: "alice", Password: "pw"},
		Mechanism: "PLAIN", LoginProxy: &LoginProxy{Addr: addr}, Transcript: &tr})
	// The TLS session is with the proxy, so its name is the one checked.
	c, err := Dial(context.Background(), "mail.example.test:2587", o)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(context.Background()); err != nil {
		t.Fatal(err)
	}
	<-done
	if o.Auth.Username != "alice" {
		t.Errorf("the caller's credentials were changed: %q", o.Auth.Username)
	}
	if !strings.Contains(tr.String(), "=== SMTP proxy "+addr+" for mail.example.test:2587") {
		t.Errorf("transcript:\n%s", tr.String())
	}
}

func TestLoginProxyNames(t *testing.T) {
	for _, tc := range []struct{ proxy, addr, want string }{
		{"proxy.test:587", "mail.test:587", "u@mail.test"},
		{"proxy.test:587", "mail.test:465", "u@mail.test:465"},
		{"[::1]:25", "[2001:db8::5]:587", "u@[2001:db8::5]:587"},
	} {
		o := &Options{Auth: &sasl.Credentials{Username: "u"}}
		got, err := (&LoginProxy{Addr: tc.proxy}).route(tc.addr, o)
		if err != nil || got != tc.proxy || o.Auth.Username != tc.want {
			t.Errorf("%s via %s: %s %q %v, want login %q", tc.addr, tc.proxy, got, o.Auth.Username, err, tc.want)
		}
	}
	for _, o := range []*Options{
		{},
		{Auth: &sasl.Credentials{Username: "u"}, Security: &security.Context{}},
	} {
		o.LoginProxy = &LoginProxy{Addr: "127.0.0.1:1"}
		_, err := Dial(context.Background(), "mail.test:587", o)
		codeIs(t, err, mailsec.Config)
	}
}

// connectProxy is an HTTP CONNECT proxy for one connection: it reads the
// request head and hands the connection and the requested authority to
// serve.
func connectProxy(t *testing.T, serve func(c net.Conn, authority string)) string {
	t.Helper()
	addr, _, _ := wiretest.Scripted(t, func(p *wiretest.Peer) {
		line := p.Expect("CONNECT ")
		for l := p.Expect(""); l != ""; l = p.Expect("") {
		}
		if n := p.R.Buffered(); n > 0 {
			t.Errorf("proxy: %d bytes after the CONNECT head", n)
		}
		authority, _, _ := strings.Cut(strings.TrimPrefix(line, "CONNECT "), " ")
		serve(p.Conn, authority)
	})
	return addr
}

// TestProxyKeepsTLSEndToEnd dials "mail.test" through a CONNECT proxy on
// 127.0.0.1: the certificate must be checked against mail.test, the real
// server's name, and never against the proxy's address.
func TestProxyKeepsTLSEndToEnd(t *testing.T) {
	realCert, realPool := wiretest.SelfSigned(t, "mail.test")
	for _, tc := range []struct {
		name string
		cert tls.Certificate
		want mailsec.Code
	}{
		{"certificate names the real host", realCert, 0},
		// This certificate names 127.0.0.1 and localhost, i.e. the proxy:
		// accepting it would mean the proxy's name was checked.
		{"certificate names the proxy", wiretest.Cert(), mailsec.TLSCertName},
	} {
		t.Run(tc.name, func(t *testing.T) {
			server, _, _ := wiretest.Scripted(t, func(p *wiretest.Peer) {
				tc := tls.Server(p.Conn, &tls.Config{Certificates: []tls.Certificate{tc.cert}})
				if err := tc.Handshake(); err != nil {
					return
				}
				if tc.ConnectionState().ServerName != "mail.test" {
					t.Errorf("SNI %q, want mail.test", tc.ConnectionState().ServerName)
				}
				r := bufio.NewReader(tc)
				tc.Write([]byte("220 mail.test ESMTP\r\n"))
				r.ReadString('\n')
				tc.Write([]byte("250 mail.test\r\n"))
				r.ReadString('\n')
				tc.Write([]byte("221 bye\r\n"))
			})
			proxy := connectProxy(t, func(c net.Conn, authority string) {
				if authority != "mail.test:465" {
					t.Errorf("CONNECT %q, want mail.test:465", authority)
					return
				}
				up, err := net.Dial("tcp", server)
				if err != nil {
					t.Error(err)
					return
				}
				defer up.Close()
				c.Write([]byte("HTTP/1.1 200 Connection established\r\n\r\n"))
				go io.Copy(up, c)
				io.Copy(c, up)
			})
			pool := realPool.Clone()
			pool.AddCert(wiretest.Cert().Leaf)
			var tr strings.Builder
			o := &Options{TLSMode: TLSImplicit, LocalName: "client.test", Transcript: &tr,
				Dialer: &dial.Proxy{Kind: dial.HTTPConnect, Addr: proxy, Transcript: &tr}}
			o.TLS.RootCAs = pool
			c, err := Dial(context.Background(), "mail.test:465", o)
			if tc.want != 0 {
				codeIs(t, err, tc.want)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if st := c.TLS(); st == nil || st.PeerCertificates[0].Subject.CommonName != "mail.test" {
				t.Fatalf("TLS state %+v", st)
			}
			if err := c.Quit(context.Background()); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(tr.String(), "-> [proxy] CONNECT mail.test:465 HTTP/1.1") || !strings.Contains(tr.String(), "<~ 220 mail.test ESMTP") {
				t.Errorf("transcript:\n%s", tr.String())
			}
		})
	}
}

// TestGarbageAfterConnect: bytes after the proxy's 200 head belong to the
// tunnel, so the client reads them as the server's greeting; junk there is
// a protocol error, never skipped in search of a greeting (a proxy that
// could make the client skip bytes could also feed it a greeting of its
// choosing).
func TestGarbageAfterConnect(t *testing.T) {
	proxy := connectProxy(t, func(c net.Conn, _ string) {
		c.Write([]byte("HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 200 OK again\r\n220 mx.test ESMTP\r\n"))
	})
	_, err := Dial(context.Background(), "mx.test:587", clientOpts(Options{TLSMode: TLSStartTLS,
		Dialer: &dial.Proxy{Kind: dial.HTTPConnect, Addr: proxy}}))
	codeIs(t, err, mailsec.Protocol)
}
