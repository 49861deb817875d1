// Package pop3 is a POP3 client (RFC 1939) whose connection security is
// driven by a security.Context: implicit TLS on 995 (RFC 8314) or STLS
// (RFC 2595), then a login with USER/PASS, APOP or SASL (RFC 5034). It lists
// and streams messages (RETR and TOP are io.Readers, never held whole in
// memory), pipelines commands when the server offers PIPELINING (RFC 2449
// section 6.6), and deletes only on a clean QUIT, as RFC 1939 section 6
// guarantees. Every call takes a context for deadlines and cancellation.
package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/dial"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/security"
	"github.com/mailsec/mailsec/tlsconf"
)

// TLSMode says how the connection is secured.
type TLSMode int

const (
	// TLSDefault is implicit TLS on port 995 and mandatory STLS on any
	// other port.
	TLSDefault TLSMode = iota
	// TLSImplicit starts TLS before POP3 (POP3S, RFC 8314 section 3.3).
	TLSImplicit
	// TLSStartTLS requires STLS; a server that does not offer it is an
	// error and nothing else is sent.
	TLSStartTLS
	// TLSStartTLSOptional uses STLS when offered and continues in plain
	// text otherwise; an active attacker can strip it.
	TLSStartTLSOptional
	// TLSNone never starts TLS.
	TLSNone
)

// For resolves TLSDefault for a port: implicit TLS on 995 (RFC 8314
// section 3.3), mandatory STLS elsewhere.
func (m TLSMode) For(port int) TLSMode {
	switch {
	case m != TLSDefault:
		return m
	case port == 995:
		return TLSImplicit
	}
	return TLSStartTLS
}

// The login methods of Options.Mechanism besides the SASL names.
const (
	// MechUser is USER/PASS (RFC 1939 section 7).
	MechUser = "USER"
	// MechAPOP is APOP (RFC 1939 section 7): an MD5 digest of the
	// greeting's timestamp and the password. It is weak (RFC 6331 retires
	// the similar CRAM-MD5 digests), so it is used only when asked for.
	MechAPOP = "APOP"
)

// Options configure a client. The zero value is usable: default TLS mode for
// the port, full certificate verification, no login, no proxy.
type Options struct {
	// TLSMode selects implicit TLS or STLS; see TLSMode.
	TLSMode TLSMode
	// TLS are the certificate and version options.
	TLS tlsconf.Options
	// Auth is the credentials; nil means no login (the session then stays
	// in the AUTHORIZATION state and can only QUIT).
	Auth *sasl.Credentials
	// Mechanism is a SASL mechanism name, MechUser, MechAPOP, or "" (or
	// "auto") for the strongest SASL mechanism offered under TLS and
	// USER/PASS when the server offers no usable one.
	Mechanism string
	// AllowPlaintextAuth permits sending credentials (or an APOP digest)
	// without TLS. Off by default: credentials never leave before TLS.
	AllowPlaintextAuth bool
	// Security, when set, replaces the context built from TLSMode, Auth and
	// Mechanism: the caller composes the drivers (seed 000's SetSecurity).
	Security *security.Context
	// ProxyHost, when set, follows the POP3 proxy convention of seed 002's
	// POP3ProxyInfo: the client connects to the proxy given to Dial and
	// logs in as "user@ProxyHost"; the proxy then opens the session with
	// the real server ProxyHost. TLS (and its certificate check) is with
	// the proxy, since that is where the connection goes.
	ProxyHost string
	// Dialer makes the TCP connection (a SOCKS or HTTP proxy, say); nil
	// dials directly.
	Dialer dial.Dialer
	// CommandTimeout bounds each command's round trip, and each read of a
	// message body, when the context has no earlier deadline; zero means
	// the 10 minutes RFC 1939 section 3 gives the server's autologout
	// timer.
	CommandTimeout time.Duration
	// Logger receives protocol and TLS events; nil discards them. The
	// transcript is logged at mailsec.LevelTrace with credentials redacted.
	Logger *slog.Logger
	// Transcript, when set, receives a swaks-style transcript: "->" and "<-"
	// in plain text, "~>" and "<~" under TLS. Credentials are redacted and
	// message content is summarised, not copied.
	Transcript io.Writer
}

// Client is a POP3 session. It is not safe for concurrent use, and a message
// reader returned by Retr or Top must be read to its end or closed before
// the next command.
type Client struct {
	conn     net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	host     string
	port     int
	opts     Options
	log      *slog.Logger
	tlslog   *slog.Logger
	tls      *tls.ConnectionState
	greeting string
	capa     map[string][]string // CAPA tags, upper case, to their arguments
	capaOK   bool                // the server answered CAPA
	sc       *security.Context
	body     *Body // the message being read, if any
	broken   error // set when the session can no longer be used
}

// Dial connects to addr ("host:port"), reads the greeting, asks CAPA and
// opens the security context (TLS, then login). On error the connection is
// closed.
func Dial(ctx context.Context, addr string, opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "dial", err, "server address %q is not host:port", addr)
	}
	port, _ := strconv.Atoi(portStr)
	mode := o.TLSMode.For(port)
	// A bad TLS option fails here, before anything is sent; each handshake
	// builds its own configuration with its own context (see handshake).
	if _, err := o.TLS.Config(host); err != nil {
		return nil, err
	}
	if o.ProxyHost != "" && o.Auth != nil {
		cred := *o.Auth
		cred.Username += "@" + o.ProxyHost
		o.Auth = &cred
	}
	sc := o.Security
	if sc == nil {
		if sc, err = defaultContext(mode, &o); err != nil {
			return nil, err
		}
	}
	conn, err := dial.Dial(ctx, o.Dialer, addr)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, host: host, port: port, opts: o, sc: sc,
		log: mailsec.Logger(o.Logger, mailsec.FacilityProtocol), tlslog: mailsec.Logger(o.Logger, mailsec.FacilityTLS)}
	c.setIO(conn)
	if err := c.start(ctx, mode); err != nil {
		c.conn.Close()
		return nil, err
	}
	return c, nil
}

// bufSize is the read and write buffer size: large enough that a message
// body moves in a few system calls per TLS record.
const bufSize = 32 << 10

func (c *Client) setIO(conn net.Conn) {
	c.conn = conn
	c.r = bufio.NewReaderSize(conn, bufSize)
	c.w = bufio.NewWriterSize(conn, 4096)
}

func (c *Client) start(ctx context.Context, mode TLSMode) error {
	if mode == TLSImplicit {
		if err := c.handshake(ctx); err != nil {
			return err
		}
	}
	rep, err := c.cmd(ctx, "greeting", "")
	if err != nil {
		return err
	}
	if !rep.OK {
		return rep.err("greeting")
	}
	c.greeting = rep.Text
	if err := c.queryCapa(ctx); err != nil {
		return err
	}
	if err := c.sc.Open(ctx, c); err != nil {
		c.quitQuietly(ctx)
		return err
	}
	if c.tls == nil && mode == TLSStartTLSOptional {
		c.log.Warn("the server does not offer STLS: continuing WITHOUT encryption, as --tls starttls-optional allows",
			"facility", string(mailsec.FacilityUser))
	}
	return nil
}

// defaultContext builds the security context the options describe: STLS
// (mandatory or optional) first, then one login driver.
func defaultContext(mode TLSMode, o *Options) (*security.Context, error) {
	sc := &security.Context{}
	switch mode {
	case TLSStartTLS:
		sc.Add(security.NewStartTLS(), security.Mandatory)
	case TLSStartTLSOptional:
		sc.Add(security.NewStartTLS(), security.Optional)
	}
	if o.Auth == nil {
		return sc, nil
	}
	mech := strings.ToUpper(o.Mechanism)
	switch mech {
	case "", "AUTO":
		sc.Add(NewLogin("", *o.Auth), security.Mandatory)
	case MechUser, MechAPOP:
		sc.Add(NewLogin(mech, *o.Auth), security.Mandatory)
	default:
		if _, err := sasl.NewClient(mech, *o.Auth); err != nil {
			return nil, err
		}
		sc.Add(security.NewAuth(mech, *o.Auth), security.Mandatory)
	}
	return sc, nil
}

// Greeting returns the text of the server's +OK banner.
func (c *Client) Greeting() string { return c.greeting }

// TLS returns the TLS state, or nil when the session is in plain text.
func (c *Client) TLS() *tls.ConnectionState { return c.tls }

// Security returns the context the session was opened with, so callers can
// read each driver's report (seed 000's GetSecurity).
func (c *Client) Security() *security.Context { return c.sc }

// State implements security.Conn.
func (c *Client) State() sasl.ConnState {
	return sasl.ConnState{TLS: c.tls, Host: c.host, Port: c.port, AllowPlaintext: c.opts.AllowPlaintextAuth}
}

// Quit ends the session with QUIT, which makes the server delete the
// messages marked with DELE (the UPDATE state of RFC 1939 section 6), and
// closes the connection. A failed QUIT means the deletions may not have
// happened.
func (c *Client) Quit(ctx context.Context) error {
	err := c.simple(ctx, "QUIT", "QUIT")
	cerr := c.sc.Close(ctx, c)
	c.conn.Close()
	c.broken = mailsec.Errorf(mailsec.NotConnected, "", nil, "the session has ended")
	if err != nil {
		return err
	}
	return cerr
}

// Close drops the connection without QUIT: the server deletes nothing
// (RFC 1939 section 6: no UPDATE state without QUIT).
func (c *Client) Close() error {
	if c.broken == nil {
		c.broken = mailsec.Errorf(mailsec.NotConnected, "", nil, "the session is closed")
	}
	return c.conn.Close()
}

func (c *Client) quitQuietly(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, _ = c.cmd(qctx, "QUIT", "QUIT")
}

// simple runs a command whose only useful answer is +OK.
func (c *Client) simple(ctx context.Context, op, line string) error {
	rep, err := c.cmd(ctx, op, line)
	if err != nil {
		return err
	}
	if !rep.OK {
		return rep.err(op)
	}
	return nil
}

// cmd sends one command line (none when line is empty) and reads the status.
func (c *Client) cmd(ctx context.Context, op, line string) (*Reply, error) {
	return c.exchange(ctx, op, line, line)
}

// exchange sends line, recording shown in the transcript instead, and reads
// the status line. An empty shown sends nothing (the greeting).
func (c *Client) exchange(ctx context.Context, op, line, shown string) (*Reply, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	done := c.guard(ctx)
	defer done()
	if shown != "" {
		if err := c.send(op, line, shown); err != nil {
			return nil, c.fail(ctx, err)
		}
		if err := c.flush(op); err != nil {
			return nil, c.fail(ctx, err)
		}
	}
	rep, err := c.status(op)
	if err != nil {
		return nil, c.fail(ctx, err)
	}
	return rep, nil
}

// usable refuses a command while the session is broken or a message body
// is still unread (its octets would be taken for the reply).
func (c *Client) usable() error {
	if c.broken != nil {
		return c.broken
	}
	if c.body != nil {
		return mailsec.Errorf(mailsec.NotConnected, "", nil, "the previous message has not been read to its end or closed")
	}
	return nil
}

// send buffers one command line; shown is what the transcript records.
// RFC 1939 section 3 forbids CR and LF inside a command; arguments come
// from callers and servers (UIDs, user names), so they are refused here
// rather than let one smuggle a second command.
func (c *Client) send(op, line, shown string) error {
	if strings.ContainsAny(line, "\r\n") {
		return mailsec.Errorf(mailsec.Data, op, nil, "command argument contains CR or LF")
	}
	c.trace(true, shown)
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return mailsec.NetError(op, mailsec.SocketTx, err)
	}
	return nil
}

func (c *Client) flush(op string) error {
	if err := c.w.Flush(); err != nil {
		return mailsec.NetError(op, mailsec.SocketTx, err)
	}
	return nil
}

// status reads one status line.
func (c *Client) status(op string) (*Reply, error) {
	line, err := readLine(c.r)
	if err == nil {
		c.trace(false, line)
		var rep *Reply
		if rep, err = parseReply(line); err == nil {
			return rep, nil
		}
	}
	if me, ok := err.(*mailsec.Error); ok && me.Op == "read reply" {
		me.Op = op
	}
	return nil, err
}

// multi reads the lines of a multi-line response under the context.
func (c *Client) multi(ctx context.Context, op string, max int, each func(string) error) error {
	done := c.guard(ctx)
	defer done()
	err := readMulti(c.r, max, func(l string) error {
		c.trace(false, l)
		return each(l)
	})
	if err != nil {
		if me, ok := err.(*mailsec.Error); ok && me.Op == "read reply" {
			me.Op = op
		}
		return c.fail(ctx, err)
	}
	c.trace(false, ".")
	return nil
}

// timeout is the command timeout in force.
func (c *Client) timeout() time.Duration {
	if c.opts.CommandTimeout > 0 {
		return c.opts.CommandTimeout
	}
	return 10 * time.Minute
}

// guard applies the context and the command timeout to the connection for
// the duration of one exchange.
func (c *Client) guard(ctx context.Context) func() {
	deadline := time.Now().Add(c.timeout())
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	c.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	return func() { stop() }
}

// fail marks the session broken after a transport or protocol error and
// refines the error when the caller's context ended it.
func (c *Client) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		code := mailsec.Canceled
		if ctx.Err() == context.DeadlineExceeded {
			code = mailsec.Timeout
		}
		op := ""
		if me, ok := err.(*mailsec.Error); ok {
			op = me.Op
		}
		err = &mailsec.Error{Code: code, Op: op, Err: ctx.Err()}
	}
	c.broken = err
	c.conn.Close()
	return err
}

// trace records one line of the transcript.
func (c *Client) trace(out bool, line string) {
	arrow := "<-"
	if out {
		arrow = "->"
	}
	if c.tls != nil {
		arrow = map[bool]string{true: "~>", false: "<~"}[out]
	}
	if c.opts.Transcript != nil {
		fmt.Fprintf(c.opts.Transcript, "%s %s\n", arrow, line)
	}
	c.log.Log(context.Background(), mailsec.LevelTrace, line, "dir", arrow)
}
