package pop3d

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/srvconn"
)

// maxErrors is the number of erroneous commands after which a session is
// closed: nobody legitimate needs that many, and it bounds what a fuzzing
// or scanning client costs.
const maxErrors = 20

// readBufferSize holds the longest line the server reads whole (a SASL
// response line); longer lines are consumed piecewise and refused.
const readBufferSize = maxSASLLine + 4096

// buffers lends the sessions of every Server their readers and writers
// (the writer large enough for RETR to go out in few writes) while they
// have work; idle sessions hold none.
var buffers = srvconn.NewPool(readBufferSize, 32<<10)

// errQuit ends a session after the reply was sent.
var errQuit = errors.New("quit")

// session is one POP3 connection.
type session struct {
	srv  *Server
	kind Kind
	ip   string
	id   string
	log  *slog.Logger

	raw  net.Conn // the accepted connection
	conn net.Conn // raw, or the *tls.Conn over it
	bufs *srvconn.Buffers
	r    *bufio.Reader // bufs.R
	w    *bufio.Writer // bufs.W

	guard srvconn.Guard // conn, for Shutdown

	tls      *tls.ConnectionState // nil before TLS
	user     string               // the USER argument awaiting PASS
	authUser string               // "" in the AUTHORIZATION state
	box      *maildrop            // the locked maildrop in TRANSACTION
	authFail int
	errors   int

	// For the session summary in the log.
	retrieved      int
	retrievedBytes int64
}

// handle runs one connection from accept to close.
func (s *Server) handle(c net.Conn, kind Kind) {
	ss := &session{srv: s, kind: kind, ip: srvconn.HostIP(c.RemoteAddr()), id: srvconn.NewID(), raw: c, conn: c}
	ss.log = s.log.With("session", ss.id, "remote", c.RemoteAddr().String(), "listener", kind.String())
	if refuse := refusalText[s.track.Admit(ss, ss.ip)]; refuse != "" {
		ss.log.Warn("connection refused", "reason", refuse)
		// POP3S cannot get a plaintext answer, and a TLS handshake is what
		// an overload should not spend CPU on: just close.
		if kind != POP3S {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			io.WriteString(c, "-ERR [SYS/TEMP] "+refuse+"\r\n")
		}
		c.Close()
		return
	}
	defer s.track.Release(ss)
	defer c.Close()
	defer func() {
		// A dropped or aborted session releases the lock and deletes
		// nothing (RFC 1939 section 6: only QUIT enters UPDATE).
		if ss.box != nil {
			ss.box.release()
		}
	}()
	defer func() {
		// A bug in one session must not take down the server.
		if p := recover(); p != nil {
			ss.log.Error("session panic", "panic", p)
		}
	}()
	ss.log.Info("connect")
	ss.run()
	ss.bufs.Release()
	ss.log.Info("disconnect", "user", ss.authUser, "retrieved", ss.retrieved, "retrieved_octets", ss.retrievedBytes)
}

// refusalText words the reasons to turn a connection away.
var refusalText = map[srvconn.Refusal]string{
	srvconn.ShuttingDown:  "Service shutting down",
	srvconn.TooMany:       "Too many connections, try again later",
	srvconn.TooManyFromIP: "Too many connections from your address, try again later",
}

// deadlineWriter gives every write to the connection its own deadline, so
// that a client that stops reading cannot pin a session, while a large
// RETR to a slow but reading client can take as long as it needs.
type deadlineWriter struct {
	c net.Conn
	d time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.c.SetWriteDeadline(time.Now().Add(w.d))
	return w.c.Write(p)
}

// setConn (re)builds the buffered reader and writer on c. After STLS this
// also discards whatever the old reader had buffered.
func (ss *session) setConn(c net.Conn) {
	ss.conn = c
	ss.guard.Set(c)
	if ss.bufs != nil {
		ss.bufs.Release()
	}
	ss.bufs = buffers.Get(c, deadlineWriter{c, max(ss.srv.Limits.IdleTimeout, 5*time.Second)})
	ss.r, ss.w = ss.bufs.R, ss.bufs.W
}

func (ss *session) run() {
	ss.setConn(ss.conn)
	if ss.kind == POP3S {
		if !ss.handshake(tls.Server(ss.conn, ss.srv.TLSConfig)) {
			return
		}
	}
	// RFC 1939 section 4: the greeting is a positive response. No APOP
	// timestamp: APOP needs the plaintext password on the server.
	ss.send(okReply(ss.srv.host + " mailsec POP3 server ready"))
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
		ss.w.Flush()
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
	if len(line)+2 > maxCommandLine {
		return ss.fail(errLineTooLong)
	}
	cmd, perr := parseCommand(line)
	if perr != nil {
		return ss.fail(perr)
	}
	if ss.log.Enabled(context.Background(), mailsec.LevelTrace) {
		ss.log.Log(context.Background(), mailsec.LevelTrace, "command", "verb", cmd.verb)
	}
	r := ss.dispatch(cmd)
	switch {
	case r == nil:
		return nil
	case r.close:
		ss.send(r)
		return errQuit
	case !r.ok:
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
		return closeReply("", "Too many errors, closing connection")
	}
	return nil
}

// dispatch executes cmd and returns the reply, or nil when the handler
// sent its (multi-line) response itself. Commands are only valid in their
// state (RFC 1939 sections 4-6).
func (ss *session) dispatch(cmd command) *reply {
	switch cmd.verb {
	case "CAPA":
		return ss.capa(cmd)
	case "QUIT":
		return ss.quit(cmd)
	}
	if ss.box == nil {
		switch cmd.verb {
		case "STLS":
			return ss.stls(cmd)
		case "USER":
			return ss.userCmd(cmd)
		case "PASS":
			return ss.pass(cmd)
		case "AUTH":
			return ss.auth(cmd)
		case "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL":
			return errWrongState
		}
		return errUnknown
	}
	switch cmd.verb {
	case "STAT":
		return ss.stat(cmd)
	case "LIST", "UIDL":
		return ss.list(cmd)
	case "RETR", "TOP":
		return ss.retr(cmd)
	case "DELE":
		return ss.dele(cmd)
	case "NOOP":
		if len(cmd.args) != 0 {
			return errSyntax
		}
		return okReply("")
	case "RSET":
		return ss.rset(cmd)
	case "STLS", "USER", "PASS", "AUTH":
		return errWrongState
	}
	return errUnknown
}

// capa answers CAPA (RFC 2449 section 5) with what is possible in the
// current state: STLS only before TLS, USER and SASL only inside TLS and
// before login (seed 004: no credentials in the clear).
func (ss *session) capa(cmd command) *reply {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	lines := []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE NEVER"}
	if ss.box == nil {
		if ss.tls == nil {
			lines = append(lines, "STLS")
		} else {
			lines = append(lines, "USER", "SASL "+strings.Join(mechanisms(), " "))
		}
	}
	lines = append(lines, "IMPLEMENTATION mailsec")
	ss.multiline(okReply("Capability list follows"), lines)
	return nil
}

// quit ends the session; in the TRANSACTION state it first enters UPDATE
// and removes the messages marked deleted (RFC 1939 section 6).
func (ss *session) quit(cmd command) *reply {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	if ss.box == nil {
		return &reply{ok: true, text: ss.srv.host + " signing off", close: true}
	}
	box := ss.box
	failed := box.commit()
	box.release()
	ss.box = nil
	if failed > 0 {
		ss.log.Error("UPDATE: messages not removed", "count", failed)
		return closeReply("SYS/TEMP", strconv.Itoa(failed)+" deleted messages not removed")
	}
	left, _ := box.stat()
	return &reply{ok: true, text: ss.srv.host + " signing off (" + strconv.Itoa(left) + " messages left)", close: true}
}

// stat answers STAT (RFC 1939 section 5).
func (ss *session) stat(cmd command) *reply {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	n, size := ss.box.stat()
	return okReply(strconv.Itoa(n) + " " + strconv.FormatInt(size, 10))
}

// list answers LIST and UIDL (RFC 1939 sections 5 and 7), for one message
// or as a multi-line listing of every message not marked deleted.
func (ss *session) list(cmd command) *reply {
	value := func(i int) string {
		if cmd.verb == "UIDL" {
			return ss.box.uids[i]
		}
		return strconv.FormatInt(ss.box.msgs[i].Size, 10)
	}
	switch len(cmd.args) {
	case 0:
		var lines []string
		for i := range ss.box.msgs {
			if !ss.box.deleted[i] {
				lines = append(lines, strconv.Itoa(i+1)+" "+value(i))
			}
		}
		n, size := ss.box.stat()
		ss.multiline(okReply(strconv.Itoa(n)+" messages ("+strconv.FormatInt(size, 10)+" octets)"), lines)
		return nil
	case 1:
		n, r := ss.box.get(cmd.args[0])
		if r != nil {
			return r
		}
		return okReply(strconv.Itoa(n) + " " + value(n-1))
	}
	return errSyntax
}

// retr answers RETR and TOP (RFC 1939 sections 5 and 7), streaming the
// message from its file with byte-stuffing.
func (ss *session) retr(cmd command) *reply {
	lines := -1
	switch {
	case cmd.verb == "RETR" && len(cmd.args) == 1:
	case cmd.verb == "TOP" && len(cmd.args) == 2:
		arg := cmd.args[1]
		if strings.Trim(arg, "0123456789") != "" {
			return errSyntax // RFC 1939 section 7: a non-negative number, no sign
		}
		// A count beyond int is valid and simply asks for every line.
		v, err := strconv.Atoi(arg)
		if err != nil {
			v = math.MaxInt
		}
		lines = v
	default:
		return errSyntax
	}
	n, r := ss.box.get(cmd.args[0])
	if r != nil {
		return r
	}
	msg := ss.box.msgs[n-1]
	f, err := os.Open(msg.Path)
	if err != nil {
		ss.log.Error("cannot open message", "err", err)
		return errStoreFailed
	}
	defer f.Close()
	head := okReply("message follows")
	if lines < 0 {
		head = okReply(strconv.FormatInt(msg.Size, 10) + " octets")
	}
	ss.send(head)
	read, err := writeMessage(ss.w, f, lines)
	if err != nil {
		// The response is already under way: a -ERR now would be taken
		// for message text, so the only honest end is to close.
		ss.log.Error("reading message failed", "err", err)
		return &reply{close: true}
	}
	ss.w.WriteString(".\r\n")
	if lines < 0 {
		ss.retrieved++
		ss.retrievedBytes += read
		if o := ss.srv.Observer; o != nil {
			o.Retrieved(ss.info(), read)
		}
	}
	return nil
}

// dele answers DELE (RFC 1939 section 5): the message is only marked.
func (ss *session) dele(cmd command) *reply {
	if len(cmd.args) != 1 {
		return errSyntax
	}
	n, r := ss.box.get(cmd.args[0])
	if r != nil {
		return r
	}
	ss.box.deleted[n-1] = true
	return okReply("message " + strconv.Itoa(n) + " deleted")
}

// rset answers RSET (RFC 1939 section 5): all deletion marks are removed.
func (ss *session) rset(cmd command) *reply {
	if len(cmd.args) != 0 {
		return errSyntax
	}
	clear(ss.box.deleted)
	n, size := ss.box.stat()
	return okReply("maildrop has " + strconv.Itoa(n) + " messages (" + strconv.FormatInt(size, 10) + " octets)")
}

// send writes a reply. Output is flushed before the next read only when
// the client has nothing more pipelined (RFC 2449 section 6.6 lets the
// server batch responses), which saves a system call per command.
func (ss *session) send(r *reply) {
	if r.text == "" && !r.ok && r.close {
		return // a silent close
	}
	line := r.line()
	if ss.log.Enabled(context.Background(), mailsec.LevelTrace) {
		ss.log.Log(context.Background(), mailsec.LevelTrace, "reply", "text", line)
	}
	ss.w.WriteString(line)
	ss.w.WriteString("\r\n")
}

// multiline sends a positive response followed by lines, byte-stuffed, and
// the terminating "." (RFC 1939 section 3).
func (ss *session) multiline(first *reply, lines []string) {
	ss.send(first)
	for _, l := range lines {
		if strings.HasPrefix(l, ".") {
			ss.w.WriteByte('.')
		}
		ss.w.WriteString(l)
		ss.w.WriteString("\r\n")
	}
	ss.w.WriteString(".\r\n")
}

// readCommand reads one command line, without CRLF, within IdleTimeout
// (srvconn.NextLine). The returned slice is valid until the next read. A
// line over maxSASLLine octets is refused with errLineTooLong; one holding
// a bare CR or LF is read to its CRLF and refused whole with
// errSyntaxChars, since RFC 1939 section 3 ends commands only with CRLF.
// AUTH response lines (RFC 5034 section 4) are read here too.
func (ss *session) readCommand() ([]byte, error) {
	line, err := srvconn.NextLine(ss.bufs, &ss.guard, ss.srv.track.Closed, ss.srv.Limits.IdleTimeout, maxSASLLine, ss.w.Flush)
	ss.r, ss.w = ss.bufs.R, ss.bufs.W
	switch {
	case errors.Is(err, srvconn.ErrClosed):
		return nil, errShutdown
	case errors.Is(err, srvconn.ErrLineTooLong):
		return nil, errLineTooLong
	case errors.Is(err, srvconn.ErrBareCRLF):
		return nil, errSyntaxChars
	}
	return line, err
}
