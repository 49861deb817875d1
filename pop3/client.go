// Package pop3 is a POP3 client (RFC 1939) whose connection security is
// driven by a security.Context: implicit TLS on 995 (RFC 8314) or STLS
// (RFC 2595), then a login with USER/PASS, APOP or SASL (RFC 5034). It lists
// and streams messages (RETR and TOP are io.Readers, never held whole in
// memory), pipelines commands when the server offers PIPELINING (RFC 2449
// section 6.6), and deletes only on a clean QUIT, as RFC 1939 section 6
// guarantees. Every call takes a context for deadlines and cancellation.
package pop3

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/dial"
	"github.com/mailsec/mailsec/internal/wire"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/security"
	"github.com/mailsec/mailsec/tlsconf"
)

// TLSMode says how the connection is secured; security.TLSMode documents
// the modes, which POP3 and SMTP share.
type TLSMode = security.TLSMode

// The TLS modes; for POP3 the STARTTLS of their names is STLS.
const (
	TLSDefault          = security.TLSDefault
	TLSImplicit         = security.TLSImplicit
	TLSStartTLS         = security.TLSStartTLS
	TLSStartTLSOptional = security.TLSStartTLSOptional
	TLSNone             = security.TLSNone
)

// ImplicitTLSPort is the POP3S port, where TLSDefault means implicit TLS
// (RFC 8314 section 3.3); TLSDefault means mandatory STLS elsewhere.
const ImplicitTLSPort = 995

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
	// Mechanism: the caller composes the drivers (Uniface's SetSecurity).
	Security *security.Context
	// ProxyHost, when set, follows the POP3 proxy convention of CSMail/SSL's
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
	// SlowGreeting, when set, is called once, from another goroutine, if
	// a server reached in plain text has sent no greeting after
	// SlowGreetingAfter (3 s when zero), while the wait goes on until
	// CommandTimeout: a port that expects implicit TLS (POP3S, RFC 8314)
	// is silent like this, and a person waiting can be told so long
	// before the timeout.
	SlowGreeting func(waited time.Duration)
	// SlowGreetingAfter is how long the greeting may take before
	// SlowGreeting is called; zero means 3 s.
	SlowGreetingAfter time.Duration
	// Logger receives protocol and TLS events; nil discards them. The
	// transcript is logged at mailsec.LevelTrace with credentials redacted.
	Logger *slog.Logger
	// Transcript, when set, receives a swaks-style transcript: "->" and "<-"
	// in plain text, "~>" and "<~" under TLS; a plain-text server line
	// reads "<- (unverified) ...", since anyone on the path could have
	// written it. Credentials are redacted and message content is
	// summarised, not copied.
	Transcript io.Writer
}

// Client is a POP3 session. It is not safe for concurrent use, and a message
// reader returned by Retr or Top must be read to its end or closed before
// the next command.
type Client struct {
	wire     *wire.Session
	host     string
	port     int
	opts     Options
	greeting string
	capa     map[string][]string // CAPA tags, upper case, to their arguments
	capaOK   bool                // the server answered CAPA
	sc       *security.Context
	body     *Body // the message being read, if any
}

// Dial connects to addr ("host:port"), reads the greeting, asks CAPA and
// opens the security context (TLS, then login). On error the connection is
// closed; an error after the connection was made is a
// *security.SessionError, which tells what was secured before the failure
// (STLS done, login refused).
func Dial(ctx context.Context, addr string, opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	host, port, err := wire.Target(addr, &o.TLS)
	if err != nil {
		return nil, err
	}
	mode := o.TLSMode.Resolve(port, ImplicitTLSPort)
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
	c := &Client{host: host, port: port, opts: o, sc: sc}
	timeout := o.CommandTimeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	// Commands are short, so only the read buffer is large.
	c.wire, err = wire.Dial(ctx, o.Dialer, addr, wire.Config{Host: host, TLS: &c.opts.TLS, Timeout: timeout,
		ReadBuffer: bufSize, WriteBuffer: 4096, Logger: o.Logger, Transcript: o.Transcript})
	if err != nil {
		return nil, err
	}
	if err := c.start(ctx, mode); err != nil {
		c.wire.Conn.Close()
		return nil, &security.SessionError{Err: err, State: c.wire.TLS, Context: c.sc}
	}
	return c, nil
}

// bufSize is the read buffer size: large enough that a message body moves
// in a few system calls per TLS record.
const bufSize = 32 << 10

func (c *Client) start(ctx context.Context, mode TLSMode) error {
	if mode == TLSImplicit {
		if err := c.wire.Handshake(ctx); err != nil {
			return err
		}
	}
	stop := func() {}
	if mode != TLSImplicit {
		stop = wire.WatchGreeting(c.opts.SlowGreetingAfter, c.opts.SlowGreeting)
	}
	rep, err := c.cmd(ctx, "greeting", "")
	stop()
	if err != nil {
		return greetingHint(err, mode)
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
	if c.wire.TLS == nil && mode == TLSStartTLSOptional {
		c.wire.Log.Warn("the server does not offer STLS: continuing WITHOUT encryption, as --tls starttls-optional allows",
			"facility", string(mailsec.FacilityUser))
	}
	return nil
}

// defaultContext builds the security context the options describe: STLS
// (mandatory or optional) first, then one login driver.
func defaultContext(mode TLSMode, o *Options) (*security.Context, error) {
	sc := mode.NewContext()
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
func (c *Client) TLS() *tls.ConnectionState { return c.wire.TLS }

// Security returns the context the session was opened with, so callers can
// read each driver's report (Uniface's GetSecurity).
func (c *Client) Security() *security.Context { return c.sc }

// State implements security.Conn.
func (c *Client) State() sasl.ConnState {
	return sasl.ConnState{TLS: c.wire.TLS, Host: c.host, Port: c.port, AllowPlaintext: c.opts.AllowPlaintextAuth}
}

// Quit ends the session with QUIT, which makes the server delete the
// messages marked with DELE (the UPDATE state of RFC 1939 section 6), and
// closes the connection. A failed QUIT means the deletions may not have
// happened.
func (c *Client) Quit(ctx context.Context) error {
	err := c.simple(ctx, "QUIT", "QUIT")
	cerr := c.sc.Close(ctx, c)
	c.wire.End()
	if err != nil {
		return err
	}
	return cerr
}

// Close drops the connection without QUIT: the server deletes nothing
// (RFC 1939 section 6: no UPDATE state without QUIT).
func (c *Client) Close() error { return c.wire.Close() }

func (c *Client) quitQuietly(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, _ = c.cmd(qctx, "QUIT", "QUIT")
}

// simple runs a command whose only useful answer is +OK.
func (c *Client) simple(ctx context.Context, op, line string) error {
	return c.simpleShown(ctx, op, line, line)
}

// simpleShown is simple for a command carrying a secret: the transcript
// records shown instead of line (PASS, APOP).
func (c *Client) simpleShown(ctx context.Context, op, line, shown string) error {
	rep, err := c.exchange(ctx, op, line, shown, single)
	if err != nil {
		return err
	}
	if !rep.OK {
		return rep.err(op)
	}
	return nil
}

// cmd sends one command line (none when line is empty) and reads the status.
func (c *Client) cmd(ctx context.Context, op, line string) (*statusLine, error) {
	return c.exchange(ctx, op, line, line, single)
}

// cmdMulti is cmd for a command whose +OK opens a multi-line response.
func (c *Client) cmdMulti(ctx context.Context, op, line string) (*statusLine, error) {
	return c.exchange(ctx, op, line, line, multiLine)
}

// exchange sends line, recording shown in the transcript instead, and reads
// the status line. An empty shown sends nothing (the greeting). RFC 1939
// section 3 forbids CR and LF inside a command; arguments come from callers
// and servers (UIDs, user names), so such a line is refused, and the
// session ended, rather than let one smuggle a second command. kind says
// what the response is made of.
func (c *Client) exchange(ctx context.Context, op, line, shown string, kind response) (*statusLine, error) {
	if err := c.usable(); err != nil {
		return nil, err
	}
	if strings.ContainsAny(line, "\r\n") {
		return nil, c.wire.Fail(ctx, mailsec.Errorf(mailsec.Data, op, nil, "command argument contains CR or LF"))
	}
	return wire.Exchange(ctx, c.wire, op, line, shown, func(op string) (*statusLine, error) { return c.status(op, kind) })
}

// usable refuses a command while the session is broken or a message body
// is still unread (its octets would be taken for the reply).
func (c *Client) usable() error {
	if c.wire.Broken != nil {
		return c.wire.Broken
	}
	if c.body != nil {
		return mailsec.Errorf(mailsec.NotConnected, "", nil, "the previous message has not been read to its end or closed")
	}
	return nil
}

// response is what a command's response is made of, so that the client
// knows when it is complete (RFC 1939 section 3: one response per
// command).
type response int

const (
	// single is a status line alone.
	single response = iota
	// multiLine is a status line whose +OK opens a multi-line response
	// (CAPA, LIST, UIDL, RETR, TOP), complete at its terminator.
	multiLine
	// challenge is the response to a line of an AUTH exchange: a status
	// line or a SASL challenge "+ " (RFC 5034 section 4), which only AUTH
	// may receive.
	challenge
)

// status reads one status line of a response of the given kind; surplus
// octets behind the last awaited response break the session (see
// wire.Session.Answered).
func (c *Client) status(op string, kind response) (*statusLine, error) {
	line, err := wire.ReadLine(c.wire.R, maxLine)
	if err != nil {
		return nil, wire.Reading(err, op)
	}
	c.wire.Trace(false, line)
	rep, err := parseReply(line)
	if err != nil {
		return nil, wire.Reading(err, op)
	}
	rep.channel = c.wire.Channel()
	if rep.Continue && kind != challenge {
		return nil, wire.Quoting(op, "the server sent a SASL challenge %q, which answers only AUTH (RFC 5034 section 4)", wire.Clip(line))
	}
	if rep.OK && kind == multiLine {
		return rep, nil
	}
	if err := c.wire.Answered(op); err != nil {
		return nil, err
	}
	return rep, nil
}

// multi reads the lines of a multi-line response under the context.
func (c *Client) multi(ctx context.Context, op string, max int, each func(string) error) error {
	done := c.wire.Guard(ctx, 1)
	defer done()
	err := readMulti(c.wire.R, max, func(l string) error {
		c.wire.Trace(false, l)
		return each(l)
	})
	if err == nil {
		c.wire.Trace(false, ".")
		err = c.wire.Answered(op)
	}
	if err != nil {
		return c.wire.Fail(ctx, wire.Reading(err, op))
	}
	return nil
}

// greetingHint adds to a failed greeting what it most likely means (see
// wire.GreetingHint): no greeting on a plain connection, or an SMTP or IMAP
// server's.
func greetingHint(err error, mode TLSMode) error {
	return wire.GreetingHint(err, mode == TLSImplicit, "POP3", ImplicitTLSPort,
		wire.Foreign{Prefix: `"220`, Name: "an SMTP"}, wire.Foreign{Prefix: `"* OK`, Name: "an IMAP"})
}
