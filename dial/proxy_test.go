package dial

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
)

// scriptedProxy runs script on the first connection to a loopback listener
// (wiretest's scripted peer, used here as raw bytes) and returns the
// listener's address. The test waits for the script.
func scriptedProxy(t *testing.T, script func(c net.Conn)) string {
	t.Helper()
	addr, _, _ := wiretest.Scripted(t, func(p *wiretest.Peer) {
		p.Conn.SetDeadline(time.Now().Add(10 * time.Second))
		script(p.Conn)
	})
	return addr
}

// answer is an HTTP proxy that reads the CONNECT head and sends s.
func answer(s string) func(t *testing.T, c net.Conn) {
	return func(t *testing.T, c net.Conn) {
		readHead(c)
		c.Write([]byte(s))
	}
}

// expect reads len(want) bytes and reports a difference.
func expect(t *testing.T, c net.Conn, want []byte) bool {
	t.Helper()
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil {
		t.Errorf("proxy: reading %q: %v", want, err)
		return false
	}
	if !bytes.Equal(got, want) {
		t.Errorf("proxy: got %q, want %q", got, want)
		return false
	}
	return true
}

// readHead reads an HTTP request head from c, byte by byte.
func readHead(c net.Conn) string {
	var b []byte
	one := make([]byte, 1)
	for !bytes.HasSuffix(b, []byte("\r\n\r\n")) {
		if _, err := c.Read(one); err != nil {
			break
		}
		b = append(b, one[0])
	}
	return string(b)
}

func wantCode(t *testing.T, err error, want mailsec.Code) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v (code %v), want code %v", err, mailsec.CodeOf(err), want)
	}
}

func port(addr string) []byte {
	_, ps, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(ps)
	return []byte{byte(n >> 8), byte(n)}
}

var socks5OK = []byte{5, 0, 0, 1, 127, 0, 0, 1, 0x30, 0x39}

func TestSOCKS5RemoteDNSTunnel(t *testing.T) {
	addr := scriptedProxy(t, func(c net.Conn) {
		if !expect(t, c, []byte{5, 1, 0}) {
			return
		}
		c.Write([]byte{5, 0})
		// ATYP 3: the name goes to the proxy; .invalid cannot resolve
		// locally (RFC 6761), so a local lookup would have failed.
		req := append([]byte{5, 1, 0, 3, 12}, "mail.invalid"...)
		if !expect(t, c, append(req, 0x02, 0x4b)) {
			return
		}
		// The reply and the server's first bytes in one segment: none of
		// the greeting may be swallowed by the handshake.
		c.Write(append(append([]byte{}, socks5OK...), "220 mail.invalid ESMTP\r\n"...))
		expect(t, c, []byte("EHLO x\r\n"))
	})
	var tr bytes.Buffer
	p := &Proxy{Kind: SOCKS5, Addr: addr, Transcript: &tr}
	c, err := p.DialContext(context.Background(), "tcp", "mail.invalid:587")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make([]byte, 24)
	if _, err := io.ReadFull(c, got); err != nil || string(got) != "220 mail.invalid ESMTP\r\n" {
		t.Fatalf("tunnel read %q, %v", got, err)
	}
	c.Write([]byte("EHLO x\r\n"))
	// The local end is the proxy's, as it reported: the client's own
	// address must not be shown to the server through the tunnel.
	if got := c.LocalAddr().String(); got != "127.0.0.1:12345" {
		t.Errorf("LocalAddr %s, want the bound address 127.0.0.1:12345", got)
	}
	if !strings.Contains(tr.String(), "-> [proxy] SOCKS5 CONNECT mail.invalid:587 (name resolved by the proxy)") {
		t.Errorf("transcript:\n%s", tr.String())
	}
}

func TestSOCKS5UserPassIPv6(t *testing.T) {
	addr := scriptedProxy(t, func(c net.Conn) {
		if !expect(t, c, []byte{5, 2, 0, 2}) {
			return
		}
		c.Write([]byte{5, 2})
		if !expect(t, c, append(append([]byte{1, 4}, "user"...), append([]byte{7}, "s3cr:t@"...)...)) {
			return
		}
		c.Write([]byte{1, 0})
		ip := net.ParseIP("2001:db8::25")
		if !expect(t, c, append(append([]byte{5, 1, 0, 4}, ip...), 0, 25)) {
			return
		}
		// Bound address as a name: its length byte must be honoured.
		c.Write(append(append([]byte{5, 0, 0, 3, 5}, "proxy"...), 0, 1, 'X'))
	})
	var tr bytes.Buffer
	p := &Proxy{Kind: SOCKS5, Addr: addr, Username: "user", Password: "s3cr:t@", Transcript: &tr}
	c, err := p.DialContext(context.Background(), "tcp", "[2001:db8::25]:25")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'X' {
		t.Fatalf("first tunnel byte %q, %v: the reply was not read exactly", b, err)
	}
	if strings.Contains(tr.String(), "s3cr:t@") || !strings.Contains(tr.String(), "(credentials redacted)") {
		t.Fatalf("credentials in the transcript:\n%s", tr.String())
	}
}

// hostile is one scripted misbehaviour and the code it must give.
type hostile struct {
	name   string
	creds  bool
	script func(t *testing.T, c net.Conn)
	want   mailsec.Code
	detail string // a substring the error must contain
}

func runHostile(t *testing.T, kind Kind, target string, cases []hostile) {
	for _, h := range cases {
		t.Run(h.name, func(t *testing.T) {
			addr := scriptedProxy(t, func(c net.Conn) { h.script(t, c) })
			var tr, logs bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: mailsec.LevelTrace}))
			p := &Proxy{Kind: kind, Addr: addr, Transcript: &tr, Logger: log, HandshakeTimeout: 300 * time.Millisecond}
			if h.creds {
				p.Username, p.Password = "agent", "pr0xy-s3cret"
				if kind == SOCKS4 || kind == SOCKS4A {
					p.Password = ""
				}
			}
			c, err := p.DialContext(context.Background(), "tcp", target)
			if err == nil {
				c.Close()
			}
			wantCode(t, err, h.want)
			if h.detail != "" && !strings.Contains(err.Error(), h.detail) {
				t.Errorf("error %q lacks %q", err, h.detail)
			}
			if !strings.Contains(logs.String(), "facility=proxy") {
				t.Errorf("no record at the proxy facility:\n%s", logs.String())
			}
			for _, s := range []string{err.Error(), tr.String(), logs.String()} {
				if strings.Contains(s, "pr0xy-s3cret") || strings.Contains(s, base64.StdEncoding.EncodeToString([]byte("agent:pr0xy-s3cret"))) {
					t.Fatalf("the proxy password leaked: %s", s)
				}
			}
		})
	}
}

// greet5 plays the method negotiation as a no-auth SOCKS5 proxy.
func greet5(t *testing.T, c net.Conn) bool {
	if !expect(t, c, []byte{5, 1, 0}) {
		return false
	}
	c.Write([]byte{5, 0})
	req := append([]byte{5, 1, 0, 3, 7}, "mx.test"...)
	return expect(t, c, append(req, 0, 25))
}

func TestSOCKS5Hostile(t *testing.T) {
	cases := []hostile{
		{name: "closed at once", script: func(t *testing.T, c net.Conn) {}, want: mailsec.ProxyServerClosed},
		{name: "truncated method reply", script: func(t *testing.T, c net.Conn) { c.Write([]byte{5}) }, want: mailsec.ProxyServerClosed},
		{name: "wrong version", script: func(t *testing.T, c net.Conn) { c.Write([]byte{4, 0}) }, want: mailsec.ProxyUnexpected},
		{name: "HTTP answer", script: func(t *testing.T, c net.Conn) { c.Write([]byte("HTTP/1.1 400 Bad\r\n\r\n")) }, want: mailsec.ProxyUnexpected},
		{name: "method not offered", script: func(t *testing.T, c net.Conn) { c.Write([]byte{5, 2}) }, want: mailsec.ProxyUnexpected, detail: "not offered"},
		{name: "GSSAPI not offered", creds: true, script: func(t *testing.T, c net.Conn) { c.Write([]byte{5, 1}) }, want: mailsec.ProxyUnexpected},
		{name: "auth required", script: func(t *testing.T, c net.Conn) { c.Write([]byte{5, 0xff}) }, want: mailsec.ProxyAuthRequired},
		{name: "no method in common", creds: true, script: func(t *testing.T, c net.Conn) { c.Write([]byte{5, 0xff}) }, want: mailsec.ProxyAuthTypeUnknown},
		{name: "auth rejected", creds: true, script: func(t *testing.T, c net.Conn) {
			c.Write([]byte{5, 2})
			io.ReadFull(c, make([]byte, 1+1+5+1+12))
			c.Write([]byte{1, 1})
		}, want: mailsec.ProxyAuthFailed},
		{name: "auth reply wrong version", creds: true, script: func(t *testing.T, c net.Conn) {
			c.Write([]byte{5, 2})
			io.ReadFull(c, make([]byte, 1+1+5+1+12))
			c.Write([]byte{5, 0})
		}, want: mailsec.ProxyUnexpected},
		{name: "auth then close", creds: true, script: func(t *testing.T, c net.Conn) {
			c.Write([]byte{5, 2})
			io.ReadFull(c, make([]byte, 4))
		}, want: mailsec.ProxyServerClosed},
		{name: "truncated CONNECT reply", script: func(t *testing.T, c net.Conn) {
			if greet5(t, c) {
				c.Write([]byte{5, 0, 0, 1, 127, 0})
			}
		}, want: mailsec.ProxyServerClosed},
		{name: "CONNECT reply wrong version", script: func(t *testing.T, c net.Conn) {
			if greet5(t, c) {
				c.Write([]byte{0, 90, 0, 25, 127, 0, 0, 1})
			}
		}, want: mailsec.ProxyUnexpected},
		{name: "unknown bound address type", script: func(t *testing.T, c net.Conn) {
			if greet5(t, c) {
				c.Write([]byte{5, 0, 0, 9, 1, 2, 3, 4, 5, 6})
			}
		}, want: mailsec.ProxyUnexpected},
		{name: "stall after greeting", script: func(t *testing.T, c net.Conn) {
			if greet5(t, c) {
				io.Copy(io.Discard, c)
			}
		}, want: mailsec.ProxySocket, detail: "no answer"},
	}
	for code := 1; code <= 9; code++ {
		text := socks5Replies[byte(code)]
		if text == "" {
			text = "unassigned"
		}
		cases = append(cases, hostile{name: "reply " + strconv.Itoa(code), script: func(t *testing.T, c net.Conn) {
			if greet5(t, c) {
				c.Write([]byte{5, byte(code), 0, 1, 0, 0, 0, 0, 0, 0})
			}
		}, want: mailsec.ProxyRequestFailed, detail: "reply " + strconv.Itoa(code) + " (" + text})
	}
	runHostile(t, SOCKS5, "mx.test:25", cases)
}

func TestSOCKS4(t *testing.T) {
	t.Run("address", func(t *testing.T) {
		addr := scriptedProxy(t, func(c net.Conn) {
			if expect(t, c, append([]byte{4, 1, 0, 25, 192, 0, 2, 7}, "agent\x00"...)) {
				c.Write([]byte{0, 90, 0, 0, 0, 0, 0, 0, 'Y'})
			}
		})
		c, err := (&Proxy{Kind: SOCKS4, Addr: addr, Username: "agent"}).DialContext(context.Background(), "tcp", "192.0.2.7:25")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil || b[0] != 'Y' {
			t.Fatalf("tunnel byte %q, %v", b, err)
		}
	})
	t.Run("4a name", func(t *testing.T) {
		addr := scriptedProxy(t, func(c net.Conn) {
			if expect(t, c, append([]byte{4, 1, 0x01, 0xd1, 0, 0, 0, 1}, "\x00mail.invalid\x00"...)) {
				c.Write([]byte{0, 90, 0, 0, 0, 0, 0, 0})
			}
		})
		c, err := (&Proxy{Kind: SOCKS4A, Addr: addr}).DialContext(context.Background(), "tcp", "mail.invalid:465")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	t.Run("local lookup", func(t *testing.T) {
		addr := scriptedProxy(t, func(c net.Conn) {
			if expect(t, c, []byte{4, 1, 0, 25, 127, 0, 0, 1, 0}) {
				c.Write([]byte{0, 90, 0, 0, 0, 0, 0, 0})
			}
		})
		c, err := (&Proxy{Kind: SOCKS4, Addr: addr}).DialContext(context.Background(), "tcp", "localhost:25")
		if err != nil {
			t.Fatal(err)
		}
		c.Close()
	})
	reply := func(b ...byte) func(t *testing.T, c net.Conn) {
		return func(t *testing.T, c net.Conn) {
			if expect(t, c, append([]byte{4, 1, 0, 25, 0, 0, 0, 1}, "\x00mx.test\x00"...)) {
				c.Write(b)
			}
		}
	}
	runHostile(t, SOCKS4A, "mx.test:25", []hostile{
		{name: "91", script: reply(0, 91, 0, 0, 0, 0, 0, 0), want: mailsec.ProxyRequestFailed, detail: "code 91 (request rejected or failed)"},
		{name: "92", script: reply(0, 92, 0, 0, 0, 0, 0, 0), want: mailsec.ProxyRequestFailed, detail: "identd"},
		{name: "93", script: reply(0, 93, 0, 0, 0, 0, 0, 0), want: mailsec.ProxyRequestFailed, detail: "different user ID"},
		{name: "unknown code", script: reply(0, 95, 0, 0, 0, 0, 0, 0), want: mailsec.ProxyUnexpected},
		{name: "version 4 reply", script: reply(4, 90, 0, 0, 0, 0, 0, 0), want: mailsec.ProxyUnexpected},
		{name: "SOCKS5 answer", script: reply(5, 0), want: mailsec.ProxyServerClosed},
		{name: "truncated", script: reply(0, 90, 0), want: mailsec.ProxyServerClosed},
		{name: "stall", script: func(t *testing.T, c net.Conn) { io.Copy(io.Discard, c) }, want: mailsec.ProxySocket},
	})
}

func TestSOCKS4IPv6Refused(t *testing.T) {
	addr := scriptedProxy(t, func(c net.Conn) { c.Read(make([]byte, 1)) })
	_, err := (&Proxy{Kind: SOCKS4A, Addr: addr}).DialContext(context.Background(), "tcp", "[2001:db8::1]:25")
	wantCode(t, err, mailsec.ProxyException)
}

func TestHTTPConnect(t *testing.T) {
	addr := scriptedProxy(t, func(c net.Conn) {
		head := readHead(c)
		want := "CONNECT [2001:db8::1]:465 HTTP/1.1\r\nHost: [2001:db8::1]:465\r\nProxy-Authorization: Basic " +
			base64.StdEncoding.EncodeToString([]byte("agent:pw")) + "\r\n\r\n"
		if head != want {
			t.Errorf("request head %q, want %q", head, want)
			return
		}
		// An interim response, a Content-Length to ignore, and the first
		// bytes of the tunnel in the same segment as the head.
		c.Write([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 Connection established\r\nContent-Length: 99\r\n\r\nTUNNEL"))
	})
	var tr bytes.Buffer
	p := &Proxy{Kind: HTTPConnect, Addr: addr, Username: "agent", Password: "pw", Transcript: &tr}
	c, err := p.DialContext(context.Background(), "tcp", "[2001:db8::1]:465")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 6)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "TUNNEL" {
		t.Fatalf("tunnel bytes %q, %v", b, err)
	}
	if la := c.LocalAddr(); la.Network() != "proxy" || la.String() != "http://REDACTED@"+addr {
		t.Errorf("LocalAddr %s %s, want the redacted proxy", la.Network(), la)
	}
	if !strings.Contains(tr.String(), "-> [proxy] Proxy-Authorization: Basic [redacted]") ||
		strings.Contains(tr.String(), base64.StdEncoding.EncodeToString([]byte("agent:pw"))) {
		t.Fatalf("transcript:\n%s", tr.String())
	}
}

func TestHTTPConnectHostile(t *testing.T) {
	runHostile(t, HTTPConnect, "mx.test:587", []hostile{
		{name: "407 without credentials", script: answer("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"x\"\r\n\r\n"),
			want: mailsec.ProxyAuthRequired},
		{name: "407 with credentials", creds: true, script: answer("HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Negotiate, Basic realm=\"x\"\r\n\r\n"),
			want: mailsec.ProxyAuthFailed},
		{name: "407 without Basic", creds: true, script: answer("HTTP/1.1 407 Nope\r\nProxy-Authenticate: Negotiate\r\nProxy-Authenticate: Digest realm=\"x\"\r\n\r\n"),
			want: mailsec.ProxyAuthTypeUnknown, detail: "Negotiate"},
		{name: "401 with credentials", creds: true, script: answer("HTTP/1.0 401 Unauthorized\r\n\r\n"), want: mailsec.ProxyAuthFailed},
		{name: "403 with reason", script: answer("HTTP/1.1 403 Forbidden by policy\r\nContent-Length: 3\r\n\r\nno\n"),
			want: mailsec.ProxyRequestFailed, detail: "HTTP 403 Forbidden by policy"},
		{name: "502", script: answer("HTTP/1.0 502 Bad Gateway\r\n\r\n"), want: mailsec.ProxyRequestFailed, detail: "502 Bad Gateway"},
		{name: "not HTTP", script: answer("220 smtp.proxy ESMTP\r\n"), want: mailsec.ProxyUnexpected},
		{name: "garbage header", script: answer("HTTP/1.1 200 OK\r\nthis is not a header\r\n\r\n"), want: mailsec.ProxyUnexpected},
		{name: "control bytes in reason", script: answer("HTTP/1.1 403 \x1b[2Jgone\r\n\r\n"), want: mailsec.ProxyRequestFailed, detail: `\x1b[2Jgone`},
		{name: "endless header", script: func(t *testing.T, c net.Conn) {
			readHead(c)
			c.Write([]byte("HTTP/1.1 200 OK\r\n"))
			c.Write(bytes.Repeat([]byte("X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n"), 400))
		}, want: mailsec.ProxyUnexpected},
		{name: "endless interim", script: answer(strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 10)), want: mailsec.ProxyUnexpected},
		{name: "closed mid-header", script: answer("HTTP/1.1 200 OK\r\nVia: x\r\n"), want: mailsec.ProxyServerClosed},
		{name: "closed before answering", script: answer(""), want: mailsec.ProxyServerClosed},
		{name: "stall", script: func(t *testing.T, c net.Conn) { readHead(c); io.Copy(io.Discard, c) }, want: mailsec.ProxySocket},
	})
}

func TestProxyUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	for _, k := range []Kind{SOCKS5, SOCKS4A, HTTPConnect} {
		_, err := (&Proxy{Kind: k, Addr: addr}).DialContext(context.Background(), "tcp", "mx.test:25")
		wantCode(t, err, mailsec.ProxyNoConn)
	}
}

func TestContextDeadlineAndCancel(t *testing.T) {
	stall := func(c net.Conn) { io.Copy(io.Discard, c) }
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// No handshake timeout of its own: only the context can end this.
	_, err := (&Proxy{Kind: SOCKS5, Addr: scriptedProxy(t, stall), HandshakeTimeout: time.Hour}).DialContext(ctx, "tcp", "mx.test:25")
	wantCode(t, err, mailsec.ProxySocket)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("%v does not wrap the deadline", err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = (&Proxy{Kind: HTTPConnect, Addr: scriptedProxy(t, stall), HandshakeTimeout: time.Hour}).DialContext(ctx, "tcp", "mx.test:25")
	wantCode(t, err, mailsec.Canceled)
}

// relay5 is a working no-auth SOCKS5 proxy for one connection: it dials
// the IPv4 target it is asked for and copies both ways.
func relay5(t *testing.T) string {
	return scriptedProxy(t, func(c net.Conn) {
		c.SetDeadline(time.Time{})
		if !expect(t, c, []byte{5, 1, 0}) {
			return
		}
		c.Write([]byte{5, 0})
		req := make([]byte, 10)
		if _, err := io.ReadFull(c, req); err != nil || req[3] != 1 {
			t.Errorf("relay: request %v, %v", req, err)
			return
		}
		dst := net.JoinHostPort(net.IP(req[4:8]).String(), strconv.Itoa(int(req[8])<<8|int(req[9])))
		up, err := net.Dial("tcp", dst)
		if err != nil {
			c.Write([]byte{5, 5, 0, 1, 0, 0, 0, 0, 0, 0})
			return
		}
		defer up.Close()
		c.Write(socks5OK)
		go io.Copy(up, c)
		io.Copy(c, up)
	})
}

func TestChainHTTPOverSOCKS5(t *testing.T) {
	inner := scriptedProxy(t, func(c net.Conn) {
		if head := readHead(c); !strings.HasPrefix(head, "CONNECT mx.test:25 HTTP/1.1\r\n") {
			t.Errorf("inner proxy got %q", head)
			return
		}
		c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n220 through two proxies\r\n"))
	})
	p := &Proxy{Kind: HTTPConnect, Addr: inner, Forward: &Proxy{Kind: SOCKS5, Addr: relay5(t)}}
	c, err := p.DialContext(context.Background(), "tcp", "mx.test:25")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := make([]byte, 25)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "220 through two proxies\r\n" {
		t.Fatalf("got %q, %v", b, err)
	}
}

func TestDialKeepsProxyCode(t *testing.T) {
	addr := scriptedProxy(t, func(c net.Conn) { c.Write([]byte{5, 0xff}) })
	_, err := Dial(context.Background(), &Proxy{Kind: SOCKS5, Addr: addr}, "mx.test:25")
	wantCode(t, err, mailsec.ProxyAuthRequired)
}

func TestCONNECTHeaderInjectionRefused(t *testing.T) {
	addr := scriptedProxy(t, func(c net.Conn) {
		if b, _ := io.ReadAll(c); len(b) != 0 {
			t.Errorf("the proxy received %q", b)
		}
	})
	_, err := (&Proxy{Kind: HTTPConnect, Addr: addr}).DialContext(context.Background(), "tcp", "mx.test\r\nX-Evil: 1:25")
	wantCode(t, err, mailsec.ProxyException)
}
