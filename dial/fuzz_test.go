package dial

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
)

// pipeDialer hands out one end of an in-memory pipe as the proxy
// connection.
type pipeDialer struct{ c net.Conn }

func (d pipeDialer) DialContext(context.Context, string, string) (net.Conn, error) { return d.c, nil }

// FuzzProxyAnswer feeds arbitrary bytes as the proxy's whole answer to each
// kind of handshake: it must end in a tunnel or a coded proxy error, never a
// panic or a hang.
func FuzzProxyAnswer(f *testing.F) {
	// The first argument picks the kind: Kind(kind%4) + 1.
	f.Add(byte(SOCKS5-1), []byte{5, 0, 5, 0, 0, 1, 1, 2, 3, 4, 0, 25})
	f.Add(byte(SOCKS5-1), []byte{5, 2, 1, 0, 5, 0, 0, 3, 3, 'a', 'b', 'c', 0, 25})
	f.Add(byte(SOCKS5-1), []byte{5, 0, 5, 4, 0, 1})
	f.Add(byte(SOCKS4-1), []byte{0, 90, 0, 0, 0, 0, 0, 0})
	f.Add(byte(SOCKS4A-1), []byte{0, 91, 0, 0, 0, 0, 0, 0})
	f.Add(byte(HTTPConnect-1), []byte("HTTP/1.1 200 OK\r\n\r\n220 x\r\n"))
	f.Add(byte(HTTPConnect-1), []byte("HTTP/1.1 407 x\r\nProxy-Authenticate: Basic\r\n\r\n"))
	f.Add(byte(HTTPConnect-1), []byte("HTTP/1.0 100 c\n\nHTTP/1.0 204 ok\n \tfold\n\n"))
	f.Fuzz(func(t *testing.T, kind byte, answer []byte) {
		k := Kind(kind%4) + 1
		client, server := net.Pipe()
		go io.Copy(io.Discard, server)
		go func() { server.Write(answer); server.Close() }()
		p := &Proxy{Kind: k, Addr: "proxy.test:1080", Username: "u", Password: "p",
			Forward: pipeDialer{client}, HandshakeTimeout: time.Second}
		if k == SOCKS4 || k == SOCKS4A {
			p.Password = ""
		}
		// SOCKS4 gets an address, which it can carry without a lookup.
		dst := "mx.test:25"
		if k == SOCKS4 {
			dst = "192.0.2.25:25"
		}
		c, err := p.DialContext(context.Background(), "tcp", dst)
		if err == nil {
			c.Close()
			return
		}
		var me *mailsec.Error
		if !errors.As(err, &me) || me.Code < mailsec.ProxyNoConn || me.Code > mailsec.ProxyAuthFailed {
			t.Fatalf("%v: not a proxy error: %v", k, err)
		}
	})
}
