package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"

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
	// is closed (srvconn.Config.MaxErrors).
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

// session is one SMTP connection; srvconn runs its loop (srvconn.Protocol).
type session struct {
	c       *srvconn.Conn
	srv     *Server
	kind    Kind
	policy  Policy
	ip      string
	literal string // ip as an address literal, for Received headers
	id      string
	log     *slog.Logger

	in *deadlineReader
	r  *bufio.Reader // c.R
	w  *bufio.Writer // c.W

	// ctx is the Backend's context (srvconn.Conn.Context): it ends with
	// the session.
	ctx context.Context

	tls      *tls.ConnectionState // nil before TLS
	tlsTrace string               // the TLS part of Received headers
	okReply  *reply               // the 250 for an accepted message
	helo     string               // "" before HELO/EHLO
	esmtp    bool                 // EHLO rather than HELO
	authUser string
	tx       *transaction // nil outside a mail transaction
}

// transaction is the state between MAIL and the end of the message.
type transaction struct {
	env   Envelope
	boxes map[string]bool // mailboxes already in env.Mailboxes
	bdat  *bdatTransfer   // the message being received by BDAT, if any
}

// handle runs one connection from accept to close.
func (s *Server) handle(nc net.Conn, kind Kind, policy Policy) {
	c := s.base.NewConn(nc, kind.String(), kind == SMTPS)
	ss := &session{c: c, srv: s, kind: kind, policy: policy, ip: c.IP, id: c.ID, log: c.Log,
		ctx: c.Context()}
	if kind != MX {
		ss.policy = TLSRequire
	}
	ss.literal = addressLiteral(ss.ip)
	c.In = ss.reader
	c.Attrs = ss.refusalAttrs
	s.base.Run(c, ss)
}

// refusalAttrs names the transaction a refusal belongs to in the log.
func (ss *session) refusalAttrs() []any {
	if ss.tx == nil {
		return nil
	}
	return []any{"from", "<" + ss.tx.env.From + ">"}
}

// reader puts the transfer deadlines (deadlineReader) under the session's
// reads from nc.
func (ss *session) reader(nc net.Conn) io.Reader {
	ss.in = &deadlineReader{c: nc}
	return ss.in
}

// Greet runs the handshake of SMTPS and sends the greeting.
func (ss *session) Greet() bool {
	ss.sync()
	if ss.kind == SMTPS && !ss.handshake() {
		return false
	}
	ss.send(rep(220, "", ss.srv.host+" ESMTP mailsec ready"))
	return true
}

// LineLimit is 512 octets but for the commands whose extensions grant more.
func (ss *session) LineLimit(verb []byte) int {
	switch {
	case bytes.EqualFold(verb, []byte("MAIL")), bytes.EqualFold(verb, []byte("RCPT")):
		return maxPathLine
	case bytes.EqualFold(verb, []byte("AUTH")):
		return maxSASLLine
	}
	return maxCommandLine
}

// Dispatch parses and executes one command line.
func (ss *session) Dispatch(line []byte) srvconn.Reply {
	ss.sync()
	cmd, perr := parseCommand(line)
	if perr != nil {
		return perr
	}
	r := ss.dispatch(cmd)
	// The command deadlines of srvconn hold again until the next transfer.
	ss.in.stopData()
	if r == nil {
		return nil
	}
	return r
}

// Describe tells the log what the command line is (describe).
func (ss *session) Describe(dst, line []byte) []byte { return describe(dst, line) }

// End aborts a BDAT delivery left waiting for chunks that will never
// come, so its Backend goroutine ends and stores nothing.
func (ss *session) End() []any {
	ss.reset()
	return nil
}

// sync picks up the buffers srvconn may have replaced in a read.
func (ss *session) sync() { ss.r, ss.w = ss.c.R, ss.c.W }

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
	// RFC 4954 section 4 and Domino's rule: AUTH only inside TLS, so that no
	// client is tempted to send a password in the clear.
	if ss.tls != nil && ss.srv.Users != nil && ss.authUser == "" {
		ext = append(ext, "AUTH "+strings.Join(mechanisms(), " "))
	}
	return rep(250, "", strings.Join(ext, "\n"))
}

// send writes a reply; srvconn.Conn.Send says when it goes out.
func (ss *session) send(r *reply) { ss.c.Send(r) }

// flush sends the buffered replies; each write has its own deadline
// (srvconn.Conn.SetConn), so a client that stops reading cannot pin the
// session forever.
func (ss *session) flush() error { return ss.w.Flush() }
