package srvconn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/mailsec/mailsec"
)

// Protocol is one line protocol's part of a session, which Server.Run
// drives the way net/http's conn.serve drives a handler: the loop reads
// lines, keeps the limits and writes the replies; the protocol parses and
// executes.
type Protocol interface {
	// Greet begins an admitted session (the handshake of implicit TLS,
	// then the greeting); false ends it.
	Greet() bool
	// LineLimit is the longest command line, with its CRLF, allowed for a
	// command starting with verb (the octets before the first space, as
	// sent).
	LineLimit(verb []byte) int
	// Dispatch parses and executes one command line, given without its
	// CRLF, and returns the reply, or nil when the handler sent its
	// replies itself.
	Dispatch(line []byte) Reply
	// Describe appends to dst what the log may say of a command line: a
	// known verb, with the arguments that are harmless (an address, a
	// message number, a SASL mechanism), never a password or a SASL
	// response; "?" for an unknown verb, which could be a secret sent out
	// of step.
	Describe(dst, line []byte) []byte
	// End ends the session, also after a panic, and returns the
	// attributes of its "disconnect" log line.
	End() []any
}

// Reply is a protocol's reply as the loop handles it.
type Reply interface {
	// WriteReply writes the reply as it goes on the wire; a silent close
	// writes nothing.
	WriteReply(w *bufio.Writer)
	// Status returns the reply's code ("250", "-ERR"; "" for a silent
	// close), its enhanced status or response code ("" for none) and its
	// text, for the log.
	Status() (code, enh, text string)
	// Refuses reports whether the reply refuses what the client asked
	// (an SMTP 4yz or 5yz reply, a POP3 -ERR), which the log records.
	Refuses() bool
	// Failed reports whether the reply refuses an erroneous command,
	// which counts against Config.MaxErrors.
	Failed() bool
	// Closes reports whether the session ends after the reply.
	Closes() bool
}

// String names a refusal for the log.
func (r Refusal) String() string {
	return [...]string{"admitted", "shutting down", "too many sessions", "too many sessions from the address"}[r]
}

// Text is what a refusal says, after the protocol's codes.
func (r Refusal) Text() string {
	return [...]string{"", "Service shutting down", "Too many connections, try again later",
		"Too many connections from your address, try again later"}[r]
}

// Replies word the refusals of the loop, each protocol its own.
type Replies struct {
	// Admission answers a connection that Tracker.Admit turned away.
	Admission func(Refusal) Reply
	// LineTooLong answers a line over its LineLimit or Config.MaxLine;
	// BareLine one holding a bare CR or LF (ErrBareCRLF).
	LineTooLong, BareLine Reply
	// TooManyErrors ends a session after Config.MaxErrors refused
	// commands, Shutdown one that Server.Shutdown ends, Timeout one whose
	// command line did not arrive in time, and Lost, a silent close, one
	// whose connection failed inside a command.
	TooManyErrors, Shutdown, Timeout, Lost Reply
}

// Config is what the sessions of one server share.
type Config struct {
	// Pool lends the sessions their buffers.
	Pool *Pool
	// Timeout bounds the wait for a whole command line (Guard.StartWait)
	// and the TLS handshake; each write to the client must make progress
	// within it too (at least 5 seconds).
	Timeout time.Duration
	// MaxLine is the longest line read at all, with its CRLF: the largest
	// LineLimit, or the SASL response limit if larger.
	MaxLine int
	// MaxErrors is the number of refused commands after which a session
	// is closed (Postfix's smtpd_hard_error_limit): nobody legitimate
	// needs that many, and it bounds what a fuzzing or scanning client
	// costs.
	MaxErrors int
	// Replies word the loop's refusals.
	Replies Replies
}

// Conn is the part of a session that the loop keeps: the connection, its
// buffers and deadlines, the handle Shutdown kicks, the log and the error
// count. A protocol's session holds one; NewConn makes it.
type Conn struct {
	// ID is the session id of the log.
	ID string
	// IP is the client's address.
	IP string
	// Log is the session's log.
	Log *slog.Logger
	// Raw is the accepted connection; Net the one the session speaks on,
	// Raw or TLS over it.
	Raw, Net net.Conn
	// R and W are the buffered reader and writer on Net, valid from
	// SetConn on; a read (ReadLine) may replace them.
	R *bufio.Reader
	W *bufio.Writer
	// In, when set, wraps Net for reading (smtpd's transfer deadlines).
	In func(net.Conn) io.Reader
	// Attrs, when set, adds the protocol's state to each refusal's log
	// line (smtpd: the sender of the transaction), as Postfix's
	// "NOQUEUE: reject" lines carry from=<...>. It is asked when a command
	// arrives, since the command may end the state it describes (the end
	// of DATA ends the transaction before its reply is written).
	Attrs func() []any

	// ctx is the session's context (Context); cancel ends it.
	ctx    context.Context
	cancel context.CancelFunc

	implicit   bool // implicit TLS: nothing is said before the handshake
	srv        *Server
	bufs       *Buffers
	guard      Guard
	errors     int
	loginFails int
	command    []byte // Protocol.Describe of the command being run
	attrs      []any  // Attrs as the command being run found them
}

// Context is the session's context: it ends when the session's loop
// returns and when Shutdown gives up waiting and closes the connection, so
// work done for the session (a Backend's delivery) stops with it.
func (c *Conn) Context() context.Context { return c.ctx }

// deadlineWriter gives every write to the connection its own deadline, so
// that a client that stops reading cannot pin a session, while a large
// response to a slow but reading client (a RETR, an EHLO reply that fills
// the buffer) takes as long as it needs. A deadline set only when the
// session flushes would miss the writes that a full buffer makes by
// itself.
type deadlineWriter struct {
	c net.Conn
	d time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.c.SetWriteDeadline(time.Now().Add(w.d))
	return w.c.Write(p)
}

// SetConn (re)builds R and W on nc. After STARTTLS this also discards
// whatever the old reader had buffered.
func (c *Conn) SetConn(nc net.Conn) {
	c.Net = nc
	c.guard.Set(nc)
	c.bufs.Release()
	var in io.Reader = nc
	if c.In != nil {
		in = c.In(nc)
	}
	c.bufs = c.srv.Pool.Get(in, deadlineWriter{nc, max(c.srv.Timeout, 5*time.Second)})
	c.R, c.W = c.bufs.R, c.bufs.W
}

// StartTLS runs the server side of a TLS handshake over Net within
// Timeout and, on success, moves the session onto it with fresh buffers:
// nothing read before the handshake survives it.
func (c *Conn) StartTLS(cfg *tls.Config) (*tls.ConnectionState, bool) {
	tc := tls.Server(c.Net, cfg)
	st, err := Handshake(tc, c.Net, c.srv.Timeout, c.srv.tlsLog.With("session", c.ID))
	if err != nil {
		return nil, false
	}
	c.SetConn(tc)
	return st, true
}

// ReadLine reads the session's next line of at most MaxLine octets
// (NextLine), within Timeout; the slice is valid until the next read. It
// returns ErrClosed once the server is shutting down.
func (c *Conn) ReadLine() ([]byte, error) {
	line, err := NextLine(c.bufs, &c.guard, c.srv.track.Closed, c.srv.Timeout, c.srv.MaxLine, c.W.Flush)
	c.R, c.W = c.bufs.R, c.bufs.W
	return line, err
}

// Send writes r. Output goes out before the next read only when the client
// has nothing more pipelined (RFC 2920 section 3.2, RFC 2449 section 6.6
// let the server batch replies until it would block on input), so the
// replies to a pipelined group leave in one write.
//
// Every reply of a session passes here, so this is where refusals are
// logged, each once (Conn.refused).
func (c *Conn) Send(r Reply) {
	if r.Refuses() {
		c.refused(r)
	}
	if c.Log.Enabled(context.Background(), mailsec.LevelTrace) {
		code, enh, text := r.Status()
		c.Log.Log(context.Background(), mailsec.LevelTrace, "reply", "code", code, "enh", enh, "text", text)
	}
	r.WriteReply(c.W)
}

// refused logs a refusal at INFO with what operators need to see why a
// client failed, as Postfix's "NOQUEUE: reject" lines give it: the client
// (the logger's "remote"), the command as Protocol.Describe tells it, the
// reply code, the enhanced status or response code, and the text.
func (c *Conn) refused(r Reply) {
	code, enh, text := r.Status()
	c.Log.Info("refused", append([]any{"command", string(c.command), "code", code, "enh", enh, "text", text}, c.attrs...)...)
}

// serve is the session loop, from the greeting to the last reply.
func (c *Conn) serve(p Protocol) {
	c.SetConn(c.Raw)
	if !p.Greet() {
		return
	}
	for c.step(p) {
	}
	c.W.Flush()
}

// step reads and executes one command; false ends the session.
func (c *Conn) step(p Protocol) bool {
	c.command, c.attrs = c.command[:0], nil
	line, err := c.ReadLine()
	switch {
	case errors.Is(err, ErrLineTooLong):
		return c.fail(c.srv.Replies.LineTooLong)
	case errors.Is(err, ErrBareCRLF):
		return c.fail(c.srv.Replies.BareLine)
	case err != nil:
		if r := c.lost(err); r != nil {
			c.Send(r)
		}
		return false
	case c.srv.track.Closed():
		c.Send(c.srv.Replies.Shutdown)
		return false
	}
	c.command = p.Describe(c.command, line)
	if c.Attrs != nil {
		c.attrs = c.Attrs()
	}
	// One rule for every verb: the limit is checked before parsing, on
	// the line as sent.
	verb, _, _ := bytes.Cut(line, []byte{' '})
	if len(line)+2 > p.LineLimit(verb) {
		return c.fail(c.srv.Replies.LineTooLong)
	}
	if c.Log.Enabled(context.Background(), mailsec.LevelTrace) {
		// What Describe says, so that not even the trace holds a secret.
		c.Log.Log(context.Background(), mailsec.LevelTrace, "command", "command", string(c.command))
	}
	r := p.Dispatch(line)
	switch {
	case r == nil:
		return true
	case r.Closes():
		c.Send(r)
		return false
	case r.Failed():
		return c.fail(r)
	}
	c.Send(r)
	return true
}

// fail answers an erroneous command and counts it against MaxErrors.
func (c *Conn) fail(r Reply) bool {
	c.Send(r)
	if c.errors++; c.errors >= c.srv.MaxErrors {
		c.Log.Warn("too many errors, closing")
		c.Send(c.srv.Replies.TooManyErrors)
		return false
	}
	return true
}

// lost returns the last word after a failed read, nil when there is none,
// and logs a timeout or a connection error. Shutdown comes first: its
// kick of a waiting read also fails it.
func (c *Conn) lost(err error) Reply {
	switch {
	case errors.Is(err, ErrClosed), c.srv.track.Closed():
		return c.srv.Replies.Shutdown
	case IsTimeout(err):
		c.Log.Info("timeout")
		return c.srv.Replies.Timeout
	case !errors.Is(err, io.EOF):
		c.Log.Info("connection error", "err", err)
	}
	return nil
}
