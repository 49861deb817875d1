// Package dial makes the TCP connections the clients use, directly or
// through a proxy (SOCKS4, SOCKS4a, SOCKS5, HTTP CONNECT), honouring the
// caller's context for DNS, connect and the proxy handshake, and mapping
// failures to the error catalogue (DNS, TCPConnect, Timeout and the proxy
// codes 1001-1009 of CSMail/SSL's catalogue).
package dial

import (
	"context"
	"net"

	"github.com/mailsec/mailsec"
)

// Dialer is the one method the clients need, the same shape as
// golang.org/x/net/proxy.ContextDialer so dialers compose.
type Dialer interface {
	DialContext(ctx context.Context, network, addr string) (net.Conn, error)
}

// Direct dials without a proxy.
var Direct Dialer = &net.Dialer{}

// Dial connects to addr through d (Direct when nil) and returns a coded
// error on failure.
func Dial(ctx context.Context, d Dialer, addr string) (net.Conn, error) {
	if d == nil {
		d = Direct
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, mailsec.NetError("connect "+addr, mailsec.TCPConnect, err)
	}
	return c, nil
}
