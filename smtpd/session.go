package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/srvconn"
)

// Line limits, measured with the CRLF.
const (
	// maxCommandLine is RFC 5321 section 4.5.3.1.4's 512 octets.
	maxCommandLine = 512
	// maxPathLine is the limit for MAIL and RCPT: 512 plus the increases
	// the extensions we advertise grant for their parameters (RFC 1870
	// section 3 SIZE, RFC 3461 section 4 DSN ENVID/ORCPT, RFC 4954 section 5
	// AUTH=), rounded up generously to 2048.
	maxPathLine = 2048
	// maxSASLLine is RFC 4954 section 4's limit for AUTH with an initial
	// response and for SASL response lines; also the hard cap on reading
	// any command line.
	maxSASLLine = 12288
	// maxErrors is the number of erroneous commands after which a session
	// is closed (Postfix's smtpd_hard_error_limit): nobody legitimate needs
	// that many, and it bounds what a fuzzing or scanning client costs.
	maxErrors = 20
	// readBufferSize is the input buffer: large so that DATA is read in
	// bulk with few system calls. It is lent only while a session has
	// input to work on (srvconn.Pool), so idle sessions do not hold it.
	readBufferSize = 64 << 10
	// writeBufferSize holds the replies to a pipelined group of commands,
	// which go out in one write (RFC 2920 section 3.2).
	writeBufferSize = 4 << 10
)

// buffers lends the sessions of every Server their readers and writers.
var buffers = srvconn.NewPool(readBufferSize, writeBufferSize)

// errQuit ends a session after the reply was sent.
var errQuit = errors.New("quit")

// session is one SMTP connection.
type session struct {
	srv     *Server
	kind    Kind
	policy  Policy
	ip      string
	literal string // ip as an address literal, for Received headers
	id      string
	log     *slog.Logger

	raw  net.Conn // the accepted connection
	conn net.Conn // raw, or the *tls.Conn over it
	in   *deadlineReader
	bufs *srvconn.Buffers
	r    *bufio.Reader // bufs.R
	w    *bufio.Writer // bufs.W

	guard srvconn.Guard // conn, for Shutdown

	// ctx is the Backend's context, cancelled when the session ends.
	ctx    context.Context
	cancel context.CancelFunc

	tls      *tls.ConnectionState // nil before TLS
	tlsTrace string               // the TLS part of Received headers
	okReply  *reply               // the 250 for an accepted message
	helo     string               // "" before HELO/EHLO
	esmtp    bool                 // EHLO rather than HELO
	authUser string
	authFail int
	errors   int
	tx       *transaction // nil outside a mail transaction
}

// transaction is the state between MAIL and the end of the message.
type transaction struct {
	env   Envelope
	boxes map[string]bool // mailboxes already in env.Mailboxes
	bdat  *bdatTransfer   // the message being received by BDAT, if any
}

// handle runs one connection from accept to close.
func (s *Server) handle(c net.Conn, kind Kind, policy Policy) {
	ss := &session{srv: s, kind: kind, policy: policy, ip: srvconn.HostIP(c.RemoteAddr()), id: srvconn.NewID(),
		raw: c, conn: c}
	ss.ctx, ss.cancel = context.WithCancel(context.Background())
	defer ss.cancel()
	if kind != MX {
		ss.policy = TLSRequire
	}
	ss.literal = addressLiteral(ss.ip)
	ss.log = s.log.With("session", ss.id, "remote", c.RemoteAddr().String(), "listener", kind.String())
	if refuse := refusalText[s.track.Admit(ss, ss.ip)]; refuse != "" {
		ss.log.Warn("connection refused", "reason", refuse)
		// SMTPS cannot get a plaintext 421, and a TLS handshake is what an
		// overload should not spend CPU on: just close.
		if kind != SMTPS {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "421 "+refuse+"\r\n")
		}
		c.Close()
		return
	}
	defer s.track.Release(ss)
	defer c.Close()
	defer func() {
		// A bug in one session must not take down the server.
		if p := recover(); p != nil {
			ss.log.Error("session panic", "panic", p)
		}
	}()
	ss.log.Info("connect")
	ss.run()
	ss.cancel()
	// A BDAT delivery left waiting for chunks that will never come is
	// aborted, so its Backend goroutine ends and stores nothing.
	ss.reset()
	ss.bufs.Release()
	ss.log.Info("disconnect")
}

// refusalText words the reasons to turn a connection away.
var refusalText = map[srvconn.Refusal]string{
	srvconn.ShuttingDown:  "4.3.2 Service shutting down",
	srvconn.TooMany:       "4.7.0 Too many connections, try again later",
	srvconn.TooManyFromIP: "4.7.0 Too many connections from your address, try again later",
}

// setConn (re)builds the buffered reader and writer on c. After STARTTLS
// this also discards whatever the old reader had buffered.
func (ss *session) setConn(c net.Conn) {
	ss.conn = c
	ss.guard.Set(c)
	if ss.bufs != nil {
		ss.bufs.Release()
	}
	ss.in = &deadlineReader{c: c}
	ss.bufs = buffers.Get(ss.in, c)
	ss.r, ss.w = ss.bufs.R, ss.bufs.W
}

func (ss *session) run() {
	ss.setConn(ss.conn)
	if ss.kind == SMTPS {
		tc := tls.Server(ss.conn, ss.srv.TLSConfig)
		if !ss.handshake(tc) {
			return
		}
	}
	ss.send(rep(220, "", ss.srv.host+" ESMTP mailsec ready"))
	for {
		err := ss.step()
		if err == nil {
			continue
		}
		var r *reply
		switch {
		case errors.Is(err, errQuit):
		case errors.As(err, &r):
			ss.send(r)
		case ss.srv.track.Closed():
			ss.send(errShutdown)
		case srvconn.IsTimeout(err):
			ss.log.Info("timeout")
			ss.send(errTimeout)
		case !errors.Is(err, io.EOF):
			ss.log.Info("connection error", "err", err)
		}
		ss.flush()
		return
	}
}

// step reads and executes one command. A non-nil error ends the session;
// if it is a *reply that reply is sent first.
func (ss *session) step() error {
	line, err := ss.readCommand()
	if errors.Is(err, errLineTooLong) || errors.Is(err, errSyntaxChars) {
		return ss.fail(err.(*reply))
	}
	if err != nil {
		return err
	}
	if ss.srv.track.Closed() {
		return errShutdown
	}
	cmd, perr := parseCommand(line)
	if perr != nil {
		return ss.fail(perr)
	}
	limit := maxCommandLine
	switch cmd.verb {
	case "MAIL", "RCPT":
		limit = maxPathLine
	case "AUTH":
		limit = maxSASLLine
	}
	if len(line)+2 > limit {
		return ss.fail(errLineTooLong)
	}
	if ss.log.Enabled(context.Background(), mailsec.LevelTrace) {
		ss.log.Log(context.Background(), mailsec.LevelTrace, "command", "verb", cmd.verb)
	}
	r := ss.dispatch(cmd)
	if r == nil {
		return nil
	}
	if r.close {
		ss.send(r)
		return errQuit
	}
	if r.code >= 500 {
		return ss.fail(r)
	}
	ss.send(r)
	return nil
}

// fail answers an erroneous command and counts it against maxErrors.
func (ss *session) fail(r *reply) error {
	ss.send(r)
	if ss.errors++; ss.errors >= maxErrors {
		ss.log.Warn("too many errors, closing")
		return &reply{code: 421, enh: "4.7.0", text: "Too many errors, closing transmission channel", close: true}
	}
	return nil
}

// dispatch executes cmd and returns the reply, or nil when the handler sent
// its replies itself.
func (ss *session) dispatch(cmd command) *reply {
	switch cmd.verb {
	case "EHLO", "HELO":
		return ss.hello(cmd)
	case "STARTTLS":
		return ss.startTLS(cmd)
	case "AUTH":
		return ss.auth(cmd)
	case "MAIL":
		return ss.mail(cmd)
	case "RCPT":
		return ss.rcpt(cmd)
	case "DATA":
		return ss.data(cmd)
	case "BDAT":
		return ss.bdat(cmd)
	case "RSET":
		if cmd.arg != "" {
			return errParamSyntax
		}
		ss.reset()
		return okReply
	case "NOOP":
		return okReply
	case "QUIT":
		return &reply{code: 221, enh: "2.0.0", text: ss.srv.host + " closing connection", close: true}
	case "VRFY":
		// RFC 5321 section 3.5.3: 252 when verification is disabled, so
		// the users cannot be enumerated.
		return rep(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery")
	case "EXPN":
		return rep(502, "5.5.1", "EXPN not available")
	case "HELP":
		return rep(214, "2.0.0", "Commands: EHLO HELO STARTTLS AUTH MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP; see RFC 5321")
	}
	return errUnknown
}

// reset ends the mail transaction (RSET, EHLO, STARTTLS, the end of the
// session), aborting a BDAT delivery in progress.
func (ss *session) reset() { ss.endTransaction(FailedTransfer) }

// endTransaction ends the mail transaction; a BDAT delivery in progress is
// aborted (the Backend stores nothing) and reported with outcome.
func (ss *session) endTransaction(o Outcome) {
	if ss.tx != nil && ss.tx.bdat != nil {
		ss.tx.bdat.abort()
		ss.observeMessage(MessageInfo{Outcome: o, Octets: ss.tx.bdat.size})
	}
	ss.tx = nil
}

// hello handles EHLO and HELO (RFC 5321 section 4.1.1.1); both reset the
// transaction (section 4.1.4).
func (ss *session) hello(cmd command) *reply {
	if !validHelo(cmd.arg) {
		return rep(501, "5.5.4", "Syntax: "+cmd.verb+" hostname")
	}
	ss.reset()
	ss.helo, ss.esmtp = cmd.arg, cmd.verb == "EHLO"
	greet := ss.srv.host + " greets " + cmd.arg
	if !ss.esmtp {
		return rep(250, "", greet)
	}
	ext := []string{greet,
		"PIPELINING",
		"SIZE " + strconv.FormatInt(ss.srv.Limits.MaxMessageSize, 10),
		"8BITMIME",
		"SMTPUTF8",
		"CHUNKING",
		"ENHANCEDSTATUSCODES",
		"DSN",
	}
	if ss.tls == nil && ss.srv.TLSConfig != nil {
		ext = append(ext, "STARTTLS")
	}
	// RFC 8689 section 2: REQUIRETLS only under TLS, where it can be kept.
	if ss.tls != nil {
		ext = append(ext, "REQUIRETLS")
	}
	// RFC 4954 section 4 and seed 004: AUTH only inside TLS, so that no
	// client is tempted to send a password in the clear.
	if ss.tls != nil && ss.srv.Users != nil && ss.authUser == "" {
		ext = append(ext, "AUTH "+strings.Join(mechanisms(), " "))
	}
	return rep(250, "", strings.Join(ext, "\n"))
}

// send writes a reply. Output is flushed before the next read only when the
// client has nothing more pipelined (RFC 2920 section 3.2 lets the server
// batch replies until it would block on input), so the replies to a
// pipelined group go out in one write.
func (ss *session) send(r *reply) {
	if r.code == 0 {
		return // a silent close
	}
	if ss.log.Enabled(context.Background(), mailsec.LevelTrace) {
		ss.log.Log(context.Background(), mailsec.LevelTrace, "reply", "code", r.code, "text", r.text)
	}
	r.writeTo(ss.w)
}

// flush sends the buffered replies with a write deadline, so that a client
// that stops reading cannot pin the session forever.
func (ss *session) flush() error {
	if ss.w.Buffered() == 0 {
		return nil
	}
	ss.conn.SetWriteDeadline(time.Now().Add(max(ss.srv.Limits.CommandTimeout, 5*time.Second)))
	return ss.w.Flush()
}

// readCommand reads one command line, without CRLF, within CommandTimeout
// (srvconn.NextLine). The returned slice is valid until the next read. A
// line over maxSASLLine octets is consumed to its end, never buffered
// whole, and answered with errLineTooLong; one ending in a bare LF is
// refused (RFC 5321 section 2.3.8).
func (ss *session) readCommand() ([]byte, error) {
	ss.in.stopData()
	line, err := srvconn.NextLine(ss.bufs, &ss.guard, ss.srv.track.Closed, ss.srv.Limits.CommandTimeout, maxSASLLine, ss.flush)
	ss.r, ss.w = ss.bufs.R, ss.bufs.W
	switch {
	case errors.Is(err, srvconn.ErrClosed):
		return nil, errShutdown
	case errors.Is(err, srvconn.ErrLineTooLong):
		return nil, errLineTooLong
	case errors.Is(err, srvconn.ErrBareLF):
		return nil, errSyntaxChars
	}
	return line, err
}
