package dial

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailsec/mailsec"
)

// Kind is the protocol spoken to a proxy.
type Kind int

// The proxy protocols.
const (
	// SOCKS5 is RFC 1928 with no authentication or RFC 1929
	// username/password. Host names go to the proxy unresolved.
	SOCKS5 Kind = iota + 1
	// SOCKS4 is the 1992 protocol: IPv4 addresses only, so a host name is
	// resolved locally first (the lookup is visible on the local network).
	SOCKS4
	// SOCKS4A is SOCKS4 with the 4a extension: the proxy resolves names.
	SOCKS4A
	// HTTPConnect is an HTTP proxy's CONNECT method (RFC 9110 section
	// 9.3.6) with optional Basic proxy authentication (RFC 7617).
	HTTPConnect
)

var kindNames = map[Kind]string{SOCKS5: "socks5", SOCKS4: "socks4", SOCKS4A: "socks4a", HTTPConnect: "http"}

// String returns the URL scheme of the kind.
func (k Kind) String() string {
	if n, ok := kindNames[k]; ok {
		return n
	}
	return "Kind(" + strconv.Itoa(int(k)) + ")"
}

// label names the protocol in messages and transcripts.
func (k Kind) label() string {
	switch k {
	case SOCKS5:
		return "SOCKS5"
	case SOCKS4:
		return "SOCKS4"
	case SOCKS4A:
		return "SOCKS4a"
	case HTTPConnect:
		return "HTTP CONNECT"
	}
	return k.String()
}

// DefaultHandshakeTimeout bounds the exchange with a proxy when neither the
// context nor Proxy.HandshakeTimeout sets an earlier limit.
const DefaultHandshakeTimeout = 30 * time.Second

// Proxy is a Dialer that reaches every target through one proxy server. The
// zero value is not usable: Kind and Addr are required (ParseURL fills them
// from a URL). The connection it returns is a plain byte stream to the
// target: TLS and its certificate check happen on top of it, end to end,
// against the target's name, never the proxy's.
type Proxy struct {
	// Kind is the protocol spoken to the proxy.
	Kind Kind
	// Addr is the proxy's host:port.
	Addr string
	// Username and Password authenticate to the proxy: RFC 1929 for SOCKS5,
	// Basic (RFC 7617) for HTTP CONNECT. SOCKS4 sends Username as its user
	// ID and has no password. Empty means no authentication. They cross the
	// network unencrypted, as both protocols define.
	Username, Password string
	// Forward reaches the proxy; nil dials it directly. Another *Proxy here
	// makes a chain.
	Forward Dialer
	// HandshakeTimeout bounds the exchange with the proxy when the context
	// has no earlier deadline; zero means DefaultHandshakeTimeout. A proxy
	// that stalls cannot hold the caller longer.
	HandshakeTimeout time.Duration
	// Logger receives the handshake at the proxy facility, one record per
	// line at mailsec.LevelTrace and the outcome at Info; nil discards.
	// Credentials are never logged.
	Logger *slog.Logger
	// Transcript, when set, receives the handshake in the arrows of the
	// protocol transcripts ("->" sent, "<-" received), marked "[proxy]",
	// with credentials redacted.
	Transcript io.Writer
}

// DialContext connects to the proxy, asks it for a tunnel to addr
// ("host:port") and returns the tunnel. Every failure is a *mailsec.Error
// with one of the proxy codes 1001-1009, or Canceled when ctx was.
func (p *Proxy) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return nil, mailsec.Errorf(mailsec.Config, p.op(), nil, "a proxy carries TCP only, not %q", network)
	}
	t, err := parseTarget(addr)
	if err != nil {
		return nil, &mailsec.Error{Code: mailsec.ProxyException, Op: p.op(), Detail: err.Error()}
	}
	fwd := p.Forward
	if fwd == nil {
		fwd = Direct
	}
	p.note("=== connecting to %s proxy %s for %s", p.Kind.label(), p.Addr, addr)
	conn, err := fwd.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return nil, p.noConn(ctx, err)
	}
	bound, err := p.handshake(ctx, conn, t)
	if err != nil {
		conn.Close()
		p.logger().Debug("proxy handshake failed", "proxy", p.Addr, "target", addr, "code", mailsec.CodeOf(err).String())
		return nil, err
	}
	p.note("=== %s tunnel to %s open", p.Kind.label(), addr)
	p.logger().Info("proxy tunnel open", "kind", p.Kind.String(), "proxy", p.Addr, "target", addr)
	tc := &tunnel{Conn: conn, local: proxyAddr(p.String())}
	if bound != nil {
		tc.local = bound
	}
	return tc, nil
}

// tunnel is a connection through a proxy. Its LocalAddr is the address the
// proxy reports having bound for the tunnel (SOCKS), or a placeholder that
// names the proxy: never the local socket's address, which a client would
// otherwise show the server (in its EHLO, say) through a proxy meant to
// stand in for it.
type tunnel struct {
	net.Conn
	local net.Addr
}

// LocalAddr returns the proxy's side of the tunnel, as far as it is known.
func (t *tunnel) LocalAddr() net.Addr { return t.local }

// proxyAddr is the local address of a tunnel whose proxy reported none.
type proxyAddr string

func (a proxyAddr) Network() string { return "proxy" }
func (a proxyAddr) String() string  { return string(a) }

// boundAddr is the TCP address a proxy reported, or nil when it reported
// none usable (SOCKS proxies often send 0.0.0.0:0).
func boundAddr(ip net.IP, port uint16) net.Addr {
	if ip == nil || ip.IsUnspecified() || port == 0 {
		return nil
	}
	return &net.TCPAddr{IP: ip, Port: int(port)}
}

// String is the proxy as a URL with any credentials redacted, so that
// printing a Proxy never shows them.
func (p *Proxy) String() string {
	u := p.Kind.String() + "://"
	if p.Username != "" || p.Password != "" {
		u += "REDACTED@"
	}
	return u + p.Addr
}

// GoString keeps %#v from printing the credentials too.
func (p *Proxy) GoString() string { return "dial.Proxy(" + p.String() + ")" }

// handshake runs the protocol exchange under the context and the handshake
// timeout, then clears the deadline for the caller. It returns the address
// the proxy bound for the tunnel, when it named one.
func (p *Proxy) handshake(ctx context.Context, conn net.Conn, t target) (net.Addr, error) {
	limit := p.HandshakeTimeout
	if limit <= 0 {
		limit = DefaultHandshakeTimeout
	}
	deadline := time.Now().Add(limit)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	var (
		bound net.Addr
		err   error
	)
	switch p.Kind {
	case SOCKS5:
		bound, err = p.socks5(ctx, conn, t)
	case SOCKS4, SOCKS4A:
		bound, err = p.socks4(ctx, conn, t)
	case HTTPConnect:
		err = p.connect(ctx, conn, t)
	default:
		err = mailsec.Errorf(mailsec.Config, p.op(), nil, "unknown proxy kind %d", int(p.Kind))
	}
	if !stop() && err == nil {
		// The context ended as the handshake finished; the deadline it
		// set would break the caller's first read.
		err = p.ioErr(ctx, "handshake", context.Cause(ctx))
	}
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Time{})
	return bound, nil
}

// target is where the tunnel should lead.
type target struct {
	host string // as given, without brackets
	ip   net.IP // set when host is an IP literal
	port uint16
}

func (t target) String() string { return net.JoinHostPort(t.host, strconv.Itoa(int(t.port))) }

func parseTarget(addr string) (target, error) {
	host, ps, err := net.SplitHostPort(addr)
	if err != nil {
		return target{}, fmt.Errorf("target %q is not host:port", addr)
	}
	port, err := strconv.ParseUint(ps, 10, 16)
	if err != nil || port == 0 {
		return target{}, fmt.Errorf("target port %q is not a number from 1 to 65535", ps)
	}
	if host == "" {
		return target{}, fmt.Errorf("target %q has no host", addr)
	}
	if strings.ContainsAny(host, "%") {
		// A zone is meaningful only on this machine, never to a proxy.
		return target{}, fmt.Errorf("target %q has an IPv6 zone, which a proxy cannot use", addr)
	}
	return target{host: host, ip: net.ParseIP(host), port: uint16(port)}, nil
}

// op is the Op of the proxy's errors; it names the proxy, never the
// credentials.
func (p *Proxy) op() string { return p.Kind.label() + " proxy " + p.Addr }

func (p *Proxy) logger() *slog.Logger { return mailsec.Logger(p.Logger, mailsec.FacilityProxy) }

// noConn classifies a failure to reach the proxy. Errors of a proxy further
// up a chain already carry their code and stay as they are.
func (p *Proxy) noConn(ctx context.Context, err error) error {
	var me *mailsec.Error
	if errors.As(err, &me) {
		return err
	}
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return &mailsec.Error{Code: mailsec.Canceled, Op: p.op(), Err: err}
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return &mailsec.Error{Code: mailsec.ProxyNoConn, Op: p.op(), Detail: "cannot resolve the proxy's host name", Err: err}
	}
	return &mailsec.Error{Code: mailsec.ProxyNoConn, Op: p.op(), Err: err}
}

// ioErr classifies a read or write failure during the handshake: a closed
// or reset connection is ProxyServerClosed, a stall past the deadline and
// any other socket failure ProxySocket, a canceled context Canceled.
func (p *Proxy) ioErr(ctx context.Context, what string, err error) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return &mailsec.Error{Code: mailsec.Canceled, Op: p.op(), Err: ctx.Err()}
	}
	if errors.Is(err, os.ErrDeadlineExceeded) || ctx.Err() != nil {
		// The connection's deadline is the context's when that is the
		// earlier, and it may fire a moment before the context notices.
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			return &mailsec.Error{Code: mailsec.ProxySocket, Op: p.op(),
				Detail: "no answer from the proxy before the deadline (" + what + ")", Err: context.DeadlineExceeded}
		}
		return &mailsec.Error{Code: mailsec.ProxySocket, Op: p.op(),
			Detail: "no answer from the proxy within the handshake timeout (" + what + ")", Err: err}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return &mailsec.Error{Code: mailsec.ProxyServerClosed, Op: p.op(),
			Detail: "the proxy closed the connection during " + what, Err: err}
	}
	return &mailsec.Error{Code: mailsec.ProxySocket, Op: p.op(), Detail: "network error during " + what, Err: err}
}

// fail builds a protocol-level error of the proxy exchange.
func (p *Proxy) fail(code mailsec.Code, format string, args ...any) error {
	return &mailsec.Error{Code: code, Op: p.op(), Detail: fmt.Sprintf(format, args...)}
}

// failQuoting is fail for a detail that quotes the proxy's own text (an
// HTTP status line or reason phrase). That text crossed the network in
// the clear, so anyone on the path could have written it, and the error
// says so where a person reads it (the EAST paper's spoofing class).
func (p *Proxy) failQuoting(code mailsec.Code, format string, args ...any) error {
	err := p.fail(code, format, args...).(*mailsec.Error)
	err.Channel = mailsec.ChannelCleartext
	return err
}

// write sends b whole.
func (p *Proxy) write(ctx context.Context, conn net.Conn, what string, b []byte) error {
	if _, err := conn.Write(b); err != nil {
		return p.ioErr(ctx, what, err)
	}
	return nil
}

// read fills b exactly: the proxy's answers have known sizes, and reading
// no further leaves every byte after them to the protocol in the tunnel.
func (p *Proxy) read(ctx context.Context, conn net.Conn, what string, b []byte) error {
	if _, err := io.ReadFull(conn, b); err != nil {
		return p.ioErr(ctx, what, err)
	}
	return nil
}

// sent and got record one line of the handshake; note records a remark.
func (p *Proxy) sent(format string, args ...any) { p.line("->", format, args...) }
func (p *Proxy) got(format string, args ...any)  { p.line("<-", format, args...) }

func (p *Proxy) line(arrow, format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if p.Transcript != nil {
		fmt.Fprintf(p.Transcript, "%s [proxy] %s\n", arrow, s)
	}
	p.logger().Log(context.Background(), mailsec.LevelTrace, s, "dir", arrow)
}

func (p *Proxy) note(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	if p.Transcript != nil {
		fmt.Fprintln(p.Transcript, s)
	}
	p.logger().Log(context.Background(), mailsec.LevelTrace, s)
}

// printable quotes what a proxy said for logs and error messages: control
// bytes and invalid UTF-8 are escaped so a hostile proxy cannot write to the
// terminal, and the length is bounded.
func printable(b []byte) string {
	const max = 200
	s := string(b)
	cut := len(s) > max
	if cut {
		s = s[:max]
	}
	q := strconv.Quote(s)
	q = q[1 : len(q)-1]
	if cut {
		q += "..."
	}
	return q
}
