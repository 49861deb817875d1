// Package smtp is an SMTP client (RFC 5321) whose connection security is
// driven by a security.Context: implicit TLS (RFC 8314) or STARTTLS
// (RFC 3207), then SASL authentication (RFC 4954), then any number of mail
// transactions with PIPELINING (RFC 2920) and CHUNKING (RFC 3030) when the
// server offers them. Every call takes a context for deadlines and
// cancellation.
package smtp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
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
	// TLSDefault is implicit TLS on port 465 and mandatory STARTTLS on any
	// other port: the secure choice for the port the user named.
	TLSDefault TLSMode = iota
	// TLSImplicit starts TLS before SMTP (SMTPS, RFC 8314 section 3.3).
	TLSImplicit
	// TLSStartTLS requires STARTTLS; a server that does not offer it is an
	// error and nothing else is sent.
	TLSStartTLS
	// TLSStartTLSOptional uses STARTTLS when offered and continues in plain
	// text otherwise: Domino's outbound "negotiated SSL" (seed 004). It is
	// open to stripping by an active attacker.
	TLSStartTLSOptional
	// TLSNone never starts TLS.
	TLSNone
)

// For resolves TLSDefault for a port: implicit TLS on 465 (RFC 8314
// section 3.3), mandatory STARTTLS elsewhere. Other modes are returned as
// they are.
func (m TLSMode) For(port int) TLSMode {
	switch {
	case m != TLSDefault:
		return m
	case port == 465:
		return TLSImplicit
	}
	return TLSStartTLS
}

// ParseTLSMode maps the CLI spellings to modes.
func ParseTLSMode(s string) (TLSMode, error) {
	switch s {
	case "", "auto":
		return TLSDefault, nil
	case "implicit":
		return TLSImplicit, nil
	case "starttls":
		return TLSStartTLS, nil
	case "starttls-optional":
		return TLSStartTLSOptional, nil
	case "none":
		return TLSNone, nil
	}
	return 0, mailsec.Errorf(mailsec.Config, "options", nil, "unknown TLS mode %q (implicit, starttls, starttls-optional, none)", s)
}

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
	// Mechanism: the caller composes the drivers (seed 000's SetSecurity).
	Security *security.Context
	// LocalName is the name sent in EHLO; empty means the host name when it
	// is fully qualified, else the address literal of the local end.
	LocalName string
	// Dialer makes the TCP connection (a proxy, say); nil dials directly.
	// A dial.Proxy keeps TLS end to end with the server named to Dial.
	Dialer dial.Dialer
	// LoginProxy, when set, sends the session to seed 002's SMTP proxy,
	// which picks the real server from the login; see LoginProxy.
	LoginProxy *LoginProxy
	// CommandTimeout bounds each command's round trip when the context has
	// no earlier deadline; zero means the 5 minutes of RFC 5321 section
	// 4.5.3.2. The final dot of DATA gets twice that (section 4.5.3.2.6).
	CommandTimeout time.Duration
	// Logger receives protocol and TLS events; nil discards them. The
	// transcript is logged at mailsec.LevelTrace with credentials redacted.
	Logger *slog.Logger
	// Transcript, when set, receives a swaks-style transcript: "->" and "<-"
	// in plain text, "~>" and "<~" under TLS. Credentials are redacted.
	Transcript io.Writer
	// AllowLongLines lets message lines exceed the 998 octets of RFC 5321
	// section 4.5.3.1.6; by default such a message is refused before the
	// end of data, so the server never delivers it.
	AllowLongLines bool
}

// Client is an SMTP session. It is not safe for concurrent use.
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
	ext      map[string]string // EHLO keywords, upper case, to their parameters
	esmtp    bool
	greet    *Reply
	hello    *Reply
	sc       *security.Context
	broken   error // set when the session can no longer be used
	chunkBuf []byte
	copyBuf  []byte
}

// Dial connects to addr ("host:port"), reads the greeting, says EHLO and
// opens the security context. On error the connection is closed.
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
	sc := o.Security
	if sc == nil {
		sc, err = defaultContext(mode, &o)
		if err != nil {
			return nil, err
		}
	}
	conn, err := dial.Dial(ctx, o.Dialer, addr)
	if err != nil {
		return nil, err
	}
	c := &Client{conn: conn, host: host, port: port, opts: o, sc: sc,
		log: mailsec.Logger(o.Logger, mailsec.FacilityProtocol), tlslog: mailsec.Logger(o.Logger, mailsec.FacilityTLS)}
	c.r = bufio.NewReaderSize(conn, 4096)
	c.w = bufio.NewWriterSize(conn, 32*1024)
	if err := c.start(ctx, mode); err != nil {
		c.conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *Client) start(ctx context.Context, mode TLSMode) error {
	if mode == TLSImplicit {
		if err := c.handshake(ctx); err != nil {
			return err
		}
	}
	rep, err := c.cmd(ctx, "greeting", "")
	if err != nil {
		return greetingHint(err, mode)
	}
	if rep.Code != 220 {
		return rep.err("greeting", mailsec.SMTPServer)
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
	if c.tls == nil && mode == TLSStartTLSOptional {
		c.log.Warn("the server does not offer STARTTLS: continuing WITHOUT encryption, as --tls starttls-optional allows",
			"facility", string(mailsec.FacilityUser))
	}
	return nil
}

// defaultContext builds the security context the options describe:
// STARTTLS (mandatory or optional) first, then one authentication driver.
func defaultContext(mode TLSMode, o *Options) (*security.Context, error) {
	sc := &security.Context{}
	switch mode {
	case TLSStartTLS:
		sc.Add(security.NewStartTLS(), security.Mandatory)
	case TLSStartTLSOptional:
		sc.Add(security.NewStartTLS(), security.Optional)
	}
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
	if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") {
		return h
	}
	if ta, ok := c.conn.LocalAddr().(*net.TCPAddr); ok {
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
		return rep.err("EHLO", mailsec.SMTPServer)
	}
	rep, err = c.cmd(ctx, "HELO", "HELO "+name)
	if err != nil {
		return err
	}
	if rep.Code != 250 {
		return rep.err("HELO", mailsec.SMTPServer)
	}
	c.esmtp = false
	c.hello = rep
	c.ext = map[string]string{}
	return nil
}

// greetingHint says what a failed greeting most often means: a port that
// expects TLS at once stays silent to a plain-text client, and a POP3 or
// IMAP server greets with "+OK" or "* OK".
func greetingHint(err error, mode TLSMode) error {
	var me *mailsec.Error
	if !errors.As(err, &me) {
		return err
	}
	switch {
	case me.Code == mailsec.Timeout && mode != TLSImplicit:
		return mailsec.Errorf(mailsec.Timeout, "greeting", me.Err,
			"the server sent no greeting; a port that expects TLS at once (implicit TLS, RFC 8314 section 3, as on 465) is silent like this, so try implicit TLS")
	case me.Code == mailsec.Protocol && strings.Contains(me.Detail, `"+OK`):
		return mailsec.Errorf(mailsec.Protocol, "greeting", nil, "this is a POP3 server, not SMTP (%s)", me.Detail)
	case me.Code == mailsec.Protocol && strings.Contains(me.Detail, `"* OK`):
		return mailsec.Errorf(mailsec.Protocol, "greeting", nil, "this is an IMAP server, not SMTP (%s)", me.Detail)
	}
	return err
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
func (c *Client) TLS() *tls.ConnectionState { return c.tls }

// Security returns the context the session was opened with, so callers can
// read each driver's report (seed 000's GetSecurity).
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
	return sasl.ConnState{TLS: c.tls, Host: c.host, Port: c.port, AllowPlaintext: c.opts.AllowPlaintextAuth}
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
	c.conn.Close()
	c.broken = mailsec.Errorf(mailsec.NotConnected, "", nil, "the session has ended")
	if err != nil {
		return err
	}
	return cerr
}

// Close closes the connection without QUIT.
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

func (c *Client) simple(ctx context.Context, op, line string, want int) error {
	rep, err := c.cmd(ctx, op, line)
	if err != nil {
		return err
	}
	if rep.Code != want {
		return rep.err(op, mailsec.SMTPServer)
	}
	return nil
}

// cmd sends one command line (none when line is empty) and reads the reply.
func (c *Client) cmd(ctx context.Context, op, line string) (*Reply, error) {
	return c.exchange(ctx, op, line, line)
}

// exchange sends line, recording shown in the transcript instead, and reads
// the reply. An empty shown sends nothing (the greeting); an empty line with
// a non-empty shown is sent, as the empty SASL response SCRAM ends with.
func (c *Client) exchange(ctx context.Context, op, line, shown string) (*Reply, error) {
	if c.broken != nil {
		return nil, c.broken
	}
	done := c.guard(ctx, 1)
	defer done()
	if shown != "" {
		if err := c.send(op, line, shown); err != nil {
			return nil, c.fail(ctx, err)
		}
		if err := c.w.Flush(); err != nil {
			return nil, c.fail(ctx, mailsec.NetError(op, mailsec.SocketTx, err))
		}
	}
	rep, err := c.read(op)
	if err != nil {
		return nil, c.fail(ctx, err)
	}
	return rep, nil
}

// send buffers one command line; shown is what the transcript records.
func (c *Client) send(op, line, shown string) error {
	c.trace(true, shown)
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return mailsec.NetError(op, mailsec.SocketTx, err)
	}
	return nil
}

func (c *Client) read(op string) (*Reply, error) {
	rep, err := readReply(c.r, func(l string) { c.trace(false, l) })
	if err != nil {
		if me, ok := err.(*mailsec.Error); ok && me.Op == "read reply" {
			me.Op = op
		}
		return nil, err
	}
	return rep, nil
}

// guard applies the context and the command timeout to the connection for
// the duration of one exchange; mult scales the default timeout.
func (c *Client) guard(ctx context.Context, mult time.Duration) func() {
	d := c.opts.CommandTimeout
	if d == 0 {
		d = 5 * time.Minute
	}
	deadline := time.Now().Add(d * mult)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	c.conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { c.conn.SetDeadline(time.Unix(1, 0)) })
	return func() { stop() }
}

// fail marks the session broken after a transport error and refines the
// error when the caller's context ended it.
func (c *Client) fail(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		code := mailsec.Canceled
		if ctx.Err() == context.DeadlineExceeded {
			code = mailsec.Timeout
		}
		err = &mailsec.Error{Code: code, Op: opOf(err), Err: ctx.Err()}
	}
	c.broken = err
	c.conn.Close()
	return err
}

func opOf(err error) string {
	if me, ok := err.(*mailsec.Error); ok {
		return me.Op
	}
	return ""
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
