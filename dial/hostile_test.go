package dial

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
)

// More of a hostile proxy's answers: lengths that lie, redirects, bodies.

func TestSOCKS5BoundDomainLengthLies(t *testing.T) {
	runHostile(t, SOCKS5, "mx.test:25", []hostile{
		{name: "length beyond the bytes sent", script: func(t *testing.T, c net.Conn) {
			if greet5(t, c) {
				c.Write(append([]byte{5, 0, 0, 3, 255}, "short"...))
				io.Copy(io.Discard, c)
			}
		}, want: mailsec.ProxySocket},
		{name: "length beyond the bytes sent, then close", script: func(t *testing.T, c net.Conn) {
			if greet5(t, c) {
				c.Write(append([]byte{5, 0, 0, 3, 200}, "short\x00\x19"...))
			}
		}, want: mailsec.ProxyServerClosed},
	})
}

func TestHTTPConnectRedirect(t *testing.T) {
	// A 3xx is no tunnel: the client never follows it to another place.
	runHostile(t, HTTPConnect, "mx.test:587", []hostile{
		{name: "301", script: answer("HTTP/1.1 301 Moved\r\nLocation: http://evil.test:8080/\r\n\r\n"), want: mailsec.ProxyRequestFailed, detail: "301"},
		{name: "307", script: answer("HTTP/1.1 307 Temporary Redirect\r\nLocation: evil.test:25\r\n\r\n"), want: mailsec.ProxyRequestFailed, detail: "307"},
	})
}

func TestHTTPConnect200WithBody(t *testing.T) {
	// RFC 9110 section 9.3.6: after a 2xx the connection is the tunnel.
	// A Content-Length or chunked body is not skipped as HTTP: its bytes
	// reach the protocol above, which then sees a server that does not
	// speak its protocol (or fails the TLS handshake) instead of a
	// greeting the proxy slipped in as a "body".
	for _, head := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 14\r\n\r\n220 fake ok\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	} {
		addr := scriptedProxy(t, func(c net.Conn) {
			readHead(c)
			c.Write([]byte(head))
		})
		c, err := (&Proxy{Kind: HTTPConnect, Addr: addr}).DialContext(t.Context(), "tcp", "mx.test:25")
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(c)
		c.Close()
		_, body, _ := strings.Cut(head, "\r\n\r\n")
		if string(got) != body {
			t.Fatalf("tunnel got %q, want %q", got, body)
		}
	}
}

func TestHTTPConnectRefusalMarkedUnverified(t *testing.T) {
	// The proxy's status line crosses the network in the clear: an
	// attacker on the path can put any text there ("call +1-555-0100"),
	// so the error and the transcript say it is unverified.
	addr := scriptedProxy(t, func(c net.Conn) {
		readHead(c)
		c.Write([]byte("HTTP/1.1 403 Blocked call +1-555-0100 now\r\n\r\n"))
	})
	var tr bytes.Buffer
	_, err := (&Proxy{Kind: HTTPConnect, Addr: addr, Transcript: &tr}).DialContext(t.Context(), "tcp", "mx.test:25")
	wantCode(t, err, mailsec.ProxyRequestFailed)
	if !strings.Contains(err.Error(), "+1-555-0100") || !strings.Contains(err.Error(), mailsec.ChannelCleartext.Mark()) {
		t.Errorf("error %q does not mark the proxy's text as unverified", err)
	}
	if !strings.Contains(tr.String(), "<- [proxy] (unverified) HTTP/1.1 403") {
		t.Errorf("transcript does not mark the proxy's line:\n%s", tr.String())
	}
}
