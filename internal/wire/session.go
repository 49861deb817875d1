// Package wire is the line-oriented session core the SMTP and POP3 clients
// share: the connection with its buffered reader and writer, the
// per-command deadline, the swaks-style transcript, the rule that a
// transport failure ends the session, and the STARTTLS/STLS upgrade. Reply
// parsing stays with each protocol, so this package knows no command.
package wire

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/tlsconf"
)

// Config describes a session. The protocol picks the buffer sizes and the
// timeout because they follow from what it carries and what its RFC says.
type Config struct {
	// Host is the name the server certificate is checked against, unless
	// TLS.ServerName overrides it.
	Host string
	// TLS are the caller's TLS options; each handshake builds its own
	// configuration from them (see Handshake).
	TLS *tlsconf.Options
	// Timeout bounds one command's round trip when the context has no
	// earlier deadline. It must not be zero.
	Timeout time.Duration
	// ReadBuffer and WriteBuffer are the bufio sizes, kept across the
	// switch to TLS.
	ReadBuffer, WriteBuffer int
	// Logger receives the transcript at mailsec.LevelTrace and the TLS
	// facts; nil discards them.
	Logger *slog.Logger
	// Transcript, when set, receives each line with its arrow.
	Transcript io.Writer
}

// Session is one client connection. It is not safe for concurrent use; the
// protocol client owning it serialises every call.
type Session struct {
	// Conn is the connection in use: the TCP one, then the TLS one.
	Conn net.Conn
	// R and W are buffered on Conn; both are replaced at the handshake so
	// that nothing read or written in plain text crosses into TLS.
	R *bufio.Reader
	W *bufio.Writer
	// TLS is the TLS state, nil while the session is in plain text.
	TLS *tls.ConnectionState
	// Broken, once set, is returned by every later command: after a
	// transport error the two ends are out of step and nothing more can be
	// trusted.
	Broken error
	// Log receives protocol events.
	Log *slog.Logger

	cfg    Config
	tlslog *slog.Logger
	// pending counts the replies awaited: the greeting, then one per
	// command sent (see Answered).
	pending int
	// peek looks into the plain socket (see unsolicited); nil when the
	// connection is not one.
	peek *peeker
}

// New starts a session on conn.
func New(conn net.Conn, cfg Config) *Session {
	s := &Session{cfg: cfg, pending: 1,
		Log:    mailsec.Logger(cfg.Logger, mailsec.FacilityProtocol),
		tlslog: mailsec.Logger(cfg.Logger, mailsec.FacilityTLS)}
	s.setIO(conn)
	s.peek = newPeeker(conn)
	return s
}

func (s *Session) setIO(conn net.Conn) {
	s.Conn = conn
	s.R = bufio.NewReaderSize(conn, s.cfg.ReadBuffer)
	s.W = bufio.NewWriterSize(conn, s.cfg.WriteBuffer)
}

// Deadline is when a command started now under ctx must be done: the
// command timeout scaled by mult, or the context's deadline if earlier.
func (s *Session) Deadline(ctx context.Context, mult int) time.Time {
	deadline := time.Now().Add(s.cfg.Timeout * time.Duration(mult))
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	return deadline
}

// Guard applies the context and the command timeout (scaled by mult) to
// the connection for the duration of one exchange; the returned function
// ends it. Cancelling ctx unblocks any read or write at once.
func (s *Session) Guard(ctx context.Context, mult int) func() {
	s.Conn.SetDeadline(s.Deadline(ctx, mult))
	return s.Interrupt(ctx)
}

// Interrupt makes the connection's reads and writes fail as soon as ctx
// ends, until the returned function is called.
func (s *Session) Interrupt(ctx context.Context) func() {
	stop := context.AfterFunc(ctx, func() { s.Conn.SetDeadline(time.Unix(1, 0)) })
	return func() { stop() }
}

// Fail marks the session broken after a transport or protocol error and
// closes the connection. An error quoting server text (see Quoting) gets
// the session's Channel. When the caller's context ended the exchange, the
// error says so (Canceled or Timeout) instead of showing the I/O error the
// forced deadline caused.
func (s *Session) Fail(ctx context.Context, err error) error {
	if me, ok := err.(*mailsec.Error); ok && me.Channel != mailsec.ChannelVerified {
		me.Channel = s.Channel()
	}
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
	s.Broken = err
	s.Conn.Close()
	return err
}

// End closes the connection after the protocol's goodbye; later commands
// fail with NotConnected.
func (s *Session) End() {
	s.Conn.Close()
	s.Broken = mailsec.Errorf(mailsec.NotConnected, "", nil, "the session has ended")
}

// Close drops the connection without a goodbye; later commands fail with
// NotConnected unless the session had already failed for another reason.
func (s *Session) Close() error {
	if s.Broken == nil {
		s.Broken = mailsec.Errorf(mailsec.NotConnected, "", nil, "the session is closed")
	}
	return s.Conn.Close()
}

// Send buffers one command line; shown is what the transcript records, so
// that secrets never reach it. A command sent while no reply is awaited is
// refused when the server has sent something meanwhile (see Answered):
// that would be read as the command's answer.
func (s *Session) Send(op, line, shown string) error {
	if s.pending == 0 {
		if err := s.unsolicited(op); err != nil {
			return err
		}
	}
	s.pending++
	s.Trace(true, shown)
	if _, err := s.W.WriteString(line + "\r\n"); err != nil {
		return mailsec.NetError(op, mailsec.SocketTx, err)
	}
	return nil
}

// Flush sends what is buffered.
func (s *Session) Flush(op string) error {
	if err := s.W.Flush(); err != nil {
		return mailsec.NetError(op, mailsec.SocketTx, err)
	}
	return nil
}

// Exchange sends line (recorded as shown; nothing is sent when shown is
// empty, as for a greeting) and reads the answer with read, under one
// Guard. Any failure breaks the session.
func Exchange[R any](ctx context.Context, s *Session, op, line, shown string, read func(op string) (R, error)) (R, error) {
	var zero R
	if s.Broken != nil {
		return zero, s.Broken
	}
	done := s.Guard(ctx, 1)
	defer done()
	if shown != "" {
		if err := s.Send(op, line, shown); err != nil {
			return zero, s.Fail(ctx, err)
		}
		if err := s.Flush(op); err != nil {
			return zero, s.Fail(ctx, err)
		}
	}
	rep, err := read(op)
	if err != nil {
		return zero, s.Fail(ctx, err)
	}
	return rep, nil
}

// cleartextMark is the transcript's compact form of
// mailsec.ChannelCleartext's mark.
const cleartextMark = "(unverified)"

// Reading names the command a reply belongs to: the protocol readers
// report their errors as of "read reply", which says less than the command
// that was waiting for it.
func Reading(err error, op string) error {
	if me, ok := err.(*mailsec.Error); ok && me.Op == "read reply" {
		me.Op = op
	}
	return err
}

// Trace records one line of the transcript with swaks's arrows: "->" and
// "<-" in plain text, "~>" and "<~" under TLS, so a reader sees at a glance
// what crossed the network unencrypted. A server line in plain text also
// carries cleartextMark before its text, where no padding can push it out
// of sight: anyone on the path could have written it.
func (s *Session) Trace(out bool, line string) {
	arrow := "<-"
	if out {
		arrow = "->"
	}
	if s.TLS != nil {
		arrow = map[bool]string{true: "~>", false: "<~"}[out]
	}
	if s.cfg.Transcript != nil {
		mark := ""
		if arrow == "<-" {
			mark = cleartextMark + " "
		}
		// The line is the server's (or echoes it): it must not drive the
		// terminal the transcript goes to.
		fmt.Fprintf(s.cfg.Transcript, "%s %s%s\n", arrow, mark, mailsec.Printable(line))
	}
	s.Log.Log(context.Background(), mailsec.LevelTrace, line, "dir", arrow)
}
