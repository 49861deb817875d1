package wire

import (
	"context"
	"net"
	"strconv"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/dial"
	"github.com/mailsec/mailsec/tlsconf"
)

// Target splits a server address and checks the TLS options against its
// host, so that a bad address or option fails before anything is sent;
// each handshake still builds its own configuration (see Handshake).
func Target(addr string, tlsOpts *tlsconf.Options) (host string, port int, err error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, mailsec.Errorf(mailsec.Config, "dial", err, "server address %q is not host:port", addr)
	}
	port, _ = strconv.Atoi(portStr)
	if _, err := tlsOpts.Config(host); err != nil {
		return "", 0, err
	}
	return host, port, nil
}

// Dial connects to addr with dialer (directly when nil) and starts a
// session on the connection.
func Dial(ctx context.Context, dialer dial.Dialer, addr string, cfg Config) (*Session, error) {
	conn, err := dial.Dial(ctx, dialer, addr)
	if err != nil {
		return nil, err
	}
	return New(conn, cfg), nil
}
