package pop3d

import (
	"crypto/tls"
	"net"
	"strings"

	"github.com/mailsec/mailsec/internal/srvconn"
)

// maxErrors is the number of erroneous commands after which a session is
// closed (srvconn.Config.MaxErrors).
const maxErrors = 20

// readBufferSize holds the longest line the server reads whole (a SASL
// response line); longer lines are consumed piecewise and refused.
const readBufferSize = maxSASLLine + 4096

// buffers lends the sessions of every Server their readers and writers
// (the writer large enough for RETR to go out in few writes) while they
// have work; idle sessions hold none.
var buffers = srvconn.NewPool(readBufferSize, 32<<10)

// session is one POP3 connection; srvconn runs its loop
// (srvconn.Protocol).
type session struct {
	c    *srvconn.Conn
	srv  *Server
	kind Kind

	tls      *tls.ConnectionState // nil before TLS
	user     string               // the USER argument awaiting PASS
	authUser string               // "" in the AUTHORIZATION state
	box      *maildrop            // the locked maildrop in TRANSACTION

	// For the session summary in the log.
	retrieved      int
	retrievedBytes int64
}

// handle runs one connection from accept to close.
func (s *Server) handle(nc net.Conn, kind Kind) {
	c := s.base.NewConn(nc, kind.String(), kind == POP3S)
	ss := &session{c: c, srv: s, kind: kind}
	s.base.Run(c, ss)
}

// Greet runs the handshake of POP3S and sends the greeting, a positive
// response (RFC 1939 section 4). No APOP timestamp: APOP needs the
// plaintext password on the server.
func (ss *session) Greet() bool {
	if ss.kind == POP3S && !ss.handshake() {
		return false
	}
	ss.send(okReply(ss.srv.base.Host + " mailsec POP3 server ready"))
	return true
}

// LineLimit is RFC 2449 section 4's 255 octets for every command,
// AUTH with an initial response included (RFC 5034 section 4).
func (ss *session) LineLimit([]byte) int { return maxCommandLine }

// Dispatch parses and executes one command line.
func (ss *session) Dispatch(line []byte) srvconn.Reply {
	cmd, perr := parseCommand(line)
	if perr != nil {
		return perr
	}
	if r := ss.dispatch(cmd); r != nil {
		return r
	}
	return nil
}

// Describe tells the log what the command line is (describe).
func (ss *session) Describe(dst, line []byte) []byte { return describe(dst, line) }

// End releases the maildrop's lock without deleting anything when the
// session ends in any way but QUIT (RFC 1939 section 6: only QUIT enters
// UPDATE), and sums the session up for the log.
func (ss *session) End() []any {
	if ss.box != nil {
		ss.box.release()
	}
	return []any{"user", ss.authUser, "retrieved", ss.retrieved, "retrieved_octets", ss.retrievedBytes}
}

// states are the sets of session states a command is valid in (RFC 1939
// sections 4-6).
type states int

const (
	authorization states = 1 << iota // before login
	transaction                      // logged in, the maildrop locked
)

// commands are the handlers by verb with the states each is valid in.
var commands = map[string]struct {
	run func(*session, command) *reply
	in  states
}{
	"CAPA": {(*session).capa, authorization | transaction},
	"QUIT": {(*session).quit, authorization | transaction},
	"STLS": {(*session).stls, authorization},
	"USER": {(*session).userCmd, authorization},
	"PASS": {(*session).pass, authorization},
	"AUTH": {(*session).auth, authorization},
	"STAT": {(*session).stat, transaction},
	"LIST": {(*session).list, transaction},
	"UIDL": {(*session).list, transaction},
	"RETR": {(*session).retr, transaction},
	"TOP":  {(*session).retr, transaction},
	"DELE": {(*session).dele, transaction},
	"NOOP": {(*session).noop, transaction},
	"RSET": {(*session).rset, transaction},
}

// dispatch executes cmd and returns the reply, or nil when the handler
// sent its (multi-line) response itself. A known command outside its
// states is refused as such, not as unknown.
func (ss *session) dispatch(cmd command) *reply {
	c, ok := commands[cmd.verb]
	state := authorization
	if ss.box != nil {
		state = transaction
	}
	switch {
	case !ok:
		return errUnknown
	case c.in&state == 0:
		return errWrongState
	}
	return c.run(ss, cmd)
}

// capa answers CAPA (RFC 2449 section 5) with what is possible in the
// current state: STLS only before TLS, USER and SASL only inside TLS and
// before login (no credentials in the clear: Domino's rule,
// docs/requirements.md).
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

// send writes a reply; srvconn.Conn.Send says when it goes out.
func (ss *session) send(r *reply) { ss.c.Send(r) }

// multiline sends a positive response followed by lines, byte-stuffed, and
// the terminating "." (RFC 1939 section 3).
func (ss *session) multiline(first *reply, lines []string) {
	ss.send(first)
	for _, l := range lines {
		if strings.HasPrefix(l, ".") {
			ss.c.W.WriteByte('.')
		}
		ss.c.W.WriteString(l)
		ss.c.W.WriteString("\r\n")
	}
	ss.c.W.WriteString(".\r\n")
}
