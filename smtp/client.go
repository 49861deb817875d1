// Package smtp is an SMTP client (RFC 5321) whose connection security is
// driven by a security.Context: implicit TLS (RFC 8314) or STARTTLS
// (RFC 3207), then SASL authentication (RFC 4954), then any number of mail
// transactions with PIPELINING (RFC 2920) and CHUNKING (RFC 3030) when the
// server offers them. Every call takes a context for deadlines and
// cancellation.
package smtp

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"os"
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
// the modes, which SMTP and POP3 share.
type TLSMode = security.TLSMode

// The TLS modes, under the names SMTP callers have always used.
const (
	TLSDefault          = security.TLSDefault
	TLSImplicit         = security.TLSImplicit
	TLSStartTLS         = security.TLSStartTLS
	TLSStartTLSOptional = security.TLSStartTLSOptional
	TLSNone             = security.TLSNone
)

// ImplicitTLSPort is the SMTPS port, where TLSDefault means implicit TLS
// (RFC 8314 section 3.3); TLSDefault means mandatory STARTTLS elsewhere.
const ImplicitTLSPort = 465

// Options configure a client. The zero value is usable: default TLS mode for
// the port, full certificate verification, no authentication, no proxy.
type Options struct {
	// TLSMode selects implicit TLS or STARTTLS; see TLSMode.
	TLSMode TLSMode
	// TLS are the certificate and version options.
	TLS tlsconf.Options
	// Auth is the credentials; with a zero value no authentication is done.
	Auth *sasl.Credentials
	// Mechanism is the SASL mechanism to use, or "" for the strongest the
	// server offers under TLS.
	Mechanism string
	// AllowPlaintextAuth permits sending credentials without TLS. Off by
	// default: credentials never leave before TLS.
	AllowPlaintextAuth bool
	// Security, when set, replaces the context built from TLSMode, Auth and
	// Mechanism: the caller composes the drivers (Uniface's SetSecurity).
	Security *security.Context
	// LocalName is the name sent in EHLO; empty means the host name when it
	// is fully qualified, else the address literal of the local end.
	LocalName string
	// Dialer makes the TCP connection (a proxy, say); nil dials directly.
	// A dial.Proxy keeps TLS end to end with the server named to Dial.
	Dialer dial.Dialer
	// LoginProxy, when set, sends the session to CSMail/SSL's SMTP proxy,
	// which picks the real server from the login; see LoginProxy.
	LoginProxy *LoginProxy
	// CommandTimeout bounds each command's round trip when the context has
	// no earlier deadline; zero means the 5 minutes of RFC 5321 section
	// 4.5.3.2. The final dot of DATA gets twice that (section 4.5.3.2.6).
	CommandTimeout time.Duration
	// SlowGreeting, when set, is called once, from another goroutine, if
	// a server reached in plain text has sent no greeting after
	// SlowGreetingAfter (3 s when zero), while the wait goes on (RFC 5321
	// section 4.5.3.2 allows the server 5 minutes): a port that expects
	// implicit TLS is silent like this, and a person waiting can be told
	// so long before the timeout.
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
	// written it. Credentials are redacted.
	Transcript io.Writer
	// AllowLongLines lets message lines exceed the 998 octets of RFC 5321
	// section 4.5.3.1.6; by default such a message is refused before the
	// end of data, so the server never delivers it.
	AllowLongLines bool
}

// Client is an SMTP session. It is not safe for concurrent use.
type Client struct {
	wire     *wire.Session
	host     string
	port     int
	opts     Options
	ext      map[string]string // EHLO keywords, upper case, to their parameters
	esmtp    bool
	greet    *mailsec.Reply
	hello    *mailsec.Reply
	sc       *security.Context
	chunkBuf []byte
	copyBuf  []byte
}

// Dial connects to addr ("host:port"), reads the greeting, says EHLO and
// opens the security context. On error the connection is closed; an error
// after the connection was made is a *security.SessionError, which tells
// what was secured before the failure (STARTTLS done, AUTH refused).
func Dial(ctx context.Context, addr string, opts *Options) (*Client, error) {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.LoginProxy != nil {
		var err error
		if addr, err = o.LoginProxy.route(addr, &o); err != nil {
			return nil, err
		}
	}
	if o.LocalName != "" {
		if err := CheckLocalName(o.LocalName); err != nil {
			return nil, err
		}
	}
	host, port, err := wire.Target(addr, &o.TLS)
	if err != nil {
		return nil, err
	}
	mode := o.TLSMode.Resolve(port, ImplicitTLSPort)
	sc := o.Security
	if sc == nil {
		if sc, err = defaultContext(mode, &o); err != nil {
			return nil, err
		}
	}
	c := &Client{host: host, port: port, opts: o, sc: sc}
	timeout := o.CommandTimeout
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	// Replies are short; the large write buffer carries message data.
	c.wire, err = wire.Dial(ctx, o.Dialer, addr, wire.Config{Host: host, TLS: &c.opts.TLS, Timeout: timeout,
		ReadBuffer: 4096, WriteBuffer: 32 * 1024, Logger: o.Logger, Transcript: o.Transcript})
	if err != nil {
		return nil, err
	}
	if err := c.start(ctx, mode); err != nil {
		c.wire.Conn.Close()
		return nil, &security.SessionError{Err: err, State: c.wire.TLS, Context: c.sc}
	}
	return c, nil
}

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
	if rep.Code != 220 {
		return replyErr(rep, "greeting", mailsec.SMTPServer)
	}
	c.greet = rep
	if err := c.ehlo(ctx); err != nil {
		return err
	}
	if err := c.sc.Open(ctx, c); err != nil {
		// A polite QUIT after a failed context tells the server we are
		// done; its answer does not matter.
		c.quitQuietly(ctx)
		return err
	}
	if c.wire.TLS == nil && mode == TLSStartTLSOptional {
		c.wire.Log.Warn("the server does not offer STARTTLS: continuing WITHOUT encryption, as --tls starttls-optional allows",
			"facility", string(mailsec.FacilityUser))
	}
	return nil
}

// defaultContext builds the security context the options describe:
// STARTTLS (mandatory or optional) first, then one authentication driver.
func defaultContext(mode TLSMode, o *Options) (*security.Context, error) {
	sc := mode.NewContext()
	if o.Auth != nil {
		mech := o.Mechanism
		if strings.EqualFold(mech, "auto") {
			mech = ""
		}
		if mech != "" {
			if _, err := sasl.NewClient(mech, *o.Auth); err != nil {
				return nil, err
			}
		}
		sc.Add(security.NewAuth(mech, *o.Auth), security.Mandatory)
	}
	return sc, nil
}

// localName picks the EHLO argument (RFC 5321 section 4.1.4: the FQDN, or
// an address literal when there is none).
func (c *Client) localName() string {
	if c.opts.LocalName != "" {
		return c.opts.LocalName
	}
	if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") && CheckLocalName(h) == nil {
		return h
	}
	if ta, ok := c.wire.Conn.LocalAddr().(*net.TCPAddr); ok {
		if ta.IP.To4() != nil {
			return "[" + ta.IP.String() + "]"
		}
		return "[IPv6:" + ta.IP.String() + "]"
	}
	return "localhost"
}

// ehlo sends EHLO and falls back to HELO when the server does not know it
// (RFC 5321 section 3.2).
func (c *Client) ehlo(ctx context.Context) error {
	name := c.localName()
	rep, err := c.cmd(ctx, "EHLO", "EHLO "+name)
	if err != nil {
		return err
	}
	if rep.Code == 250 {
		c.esmtp = true
		c.hello = rep
		c.ext = parseEHLO(rep.Lines)
		return nil
	}
	if rep.Code != 500 && rep.Code != 502 && rep.Code != 504 {
		return replyErr(rep, "EHLO", mailsec.SMTPServer)
	}
	rep, err = c.cmd(ctx, "HELO", "HELO "+name)
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		return replyErr(rep, "HELO", mailsec.SMTPServer)
	}
	c.esmtp = false
	c.hello = rep
	c.ext = map[string]string{}
	return nil
}

// greetingHint adds to a failed greeting what it most likely means (see
// wire.GreetingHint): no greeting on a plain connection, or a POP3 or IMAP
// server's.
func greetingHint(err error, mode TLSMode) error {
	return wire.GreetingHint(err, mode == TLSImplicit, "SMTP", ImplicitTLSPort,
		wire.Foreign{Prefix: `"+OK`, Name: "a POP3"}, wire.Foreign{Prefix: `"* OK`, Name: "an IMAP"})
}

// parseEHLO reads the keyword lines after the greeting line of an EHLO
// reply (RFC 5321 section 4.1.1.1).
func parseEHLO(lines []string) map[string]string {
	ext := map[string]string{}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, " ")
		k = strings.ToUpper(k)
		// "AUTH=PLAIN LOGIN" is the pre-RFC 4954 spelling some servers
		// still send beside AUTH; merge both.
		if a, ok := strings.CutPrefix(k, "AUTH="); ok {
			k, v = "AUTH", strings.TrimSpace(a+" "+v)
		}
		if old, ok := ext[k]; ok && k == "AUTH" {
			v = old + " " + v
		}
		ext[k] = v
	}
	return ext
}

// Extension reports whether the server announced the EHLO keyword and
// returns its parameters.
func (c *Client) Extension(name string) (bool, string) {
	v, ok := c.ext[strings.ToUpper(name)]
	return ok, v
}

// Extensions returns the EHLO keywords of the current session state.
func (c *Client) Extensions() map[string]string {
	out := make(map[string]string, len(c.ext))
	for k, v := range c.ext {
		out[k] = v
	}
	return out
}

// Greeting returns the server's 220 banner.
func (c *Client) Greeting() string {
	if c.greet == nil {
		return ""
	}
	return strings.Join(c.greet.Lines, "\n")
}

// TLS returns the TLS state, or nil when the session is in plain text.
func (c *Client) TLS() *tls.ConnectionState { return c.wire.TLS }

// Security returns the context the session was opened with, so callers can
// read each driver's report (Uniface's GetSecurity).
func (c *Client) Security() *security.Context { return c.sc }

// Caps implements security.Conn.
func (c *Client) Caps() security.Caps {
	caps := security.Caps{}
	_, caps.StartTLS = c.ext["STARTTLS"]
	if a, ok := c.ext["AUTH"]; ok {
		seen := map[string]bool{}
		for _, m := range strings.Fields(strings.ToUpper(a)) {
			if !seen[m] {
				seen[m] = true
				caps.Auth = append(caps.Auth, m)
			}
		}
	}
	return caps
}

// Requery implements security.Conn: after TLS the old EHLO answer is
// discarded and the server asked again (RFC 3207 section 4.2).
func (c *Client) Requery(ctx context.Context) error {
	c.ext = nil
	return c.ehlo(ctx)
}

// State implements security.Conn.
func (c *Client) State() sasl.ConnState {
	return sasl.ConnState{TLS: c.wire.TLS, Host: c.host, Port: c.port, AllowPlaintext: c.opts.AllowPlaintextAuth}
}

// Noop sends NOOP, to keep a session alive or test it.
func (c *Client) Noop(ctx context.Context) error {
	return c.simple(ctx, "NOOP", "NOOP", 250)
}

// Reset aborts the current mail transaction (RSET) so the session can carry
// another message.
func (c *Client) Reset(ctx context.Context) error {
	return c.simple(ctx, "RSET", "RSET", 250)
}

// Quit ends the session politely and closes the connection.
func (c *Client) Quit(ctx context.Context) error {
	err := c.simple(ctx, "QUIT", "QUIT", 221)
	cerr := c.sc.Close(ctx, c)
	c.wire.End()
	if err != nil {
		return err
	}
	return cerr
}

// Close closes the connection without QUIT.
func (c *Client) Close() error { return c.wire.Close() }

func (c *Client) quitQuietly(ctx context.Context) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	_, _ = c.cmd(qctx, "QUIT", "QUIT")
}

func (c *Client) simple(ctx context.Context, op, line string, want int) error {
	rep, err := c.cmd(ctx, op, line)
	if err != nil {
		return err
	}
	if rep.Code != want {
		return replyErr(rep, op, mailsec.SMTPServer)
	}
	return nil
}

// cmd sends one command line (none when line is empty) and reads the reply.
func (c *Client) cmd(ctx context.Context, op, line string) (*mailsec.Reply, error) {
	return c.exchange(ctx, op, line, line)
}

// exchange sends line, recording shown in the transcript instead, and reads
// the reply. An empty shown sends nothing (the greeting); an empty line with
// a non-empty shown is sent, as the empty SASL response SCRAM ends with.
func (c *Client) exchange(ctx context.Context, op, line, shown string) (*mailsec.Reply, error) {
	return wire.Exchange(ctx, c.wire, op, line, shown, c.read)
}

// read reads the reply to one command and records how it was received;
// surplus octets behind the last awaited reply break the session (see
// wire.Session.Answered).
func (c *Client) read(op string) (*mailsec.Reply, error) {
	rep, err := readReply(c.wire.R, func(l string) { c.wire.Trace(false, l) })
	if err != nil {
		return nil, wire.Reading(err, op)
	}
	rep.Channel = c.wire.Channel()
	if err := c.wire.Answered(op); err != nil {
		return nil, err
	}
	return rep, nil
}

// Err returns the error that broke the session, nil while the session can
// carry another transaction: a relay keeping connections for reuse asks
// it before handing a session to the next message.
func (c *Client) Err() error { return c.wire.Broken }
