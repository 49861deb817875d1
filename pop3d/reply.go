package pop3d

import (
	"bufio"

	"github.com/mailsec/mailsec/internal/srvconn"
)

// reply is a single-line POP3 response: "+OK text" or "-ERR [CODE] text"
// with an RFC 2449 section 8 / RFC 3206 response code. A *reply is also
// the error value of the parsing and policy helpers, so a failure carries
// its answer.
type reply struct {
	ok    bool
	code  string // response code without brackets, "" for none
	text  string
	close bool // the session ends after this reply
}

// Error makes a reply usable as an error value.
func (r *reply) Error() string { return r.line() }

// silent reports a close without a word.
func (r *reply) silent() bool { return r.text == "" && !r.ok && r.close }

// WriteReply writes the reply as it goes on the wire; a silent close
// writes nothing.
func (r *reply) WriteReply(w *bufio.Writer) {
	if r.silent() {
		return
	}
	w.WriteString(r.line())
	w.WriteString("\r\n")
}

// Status returns "+OK" or "-ERR", the response code and the text for the
// log.
func (r *reply) Status() (code, enh, text string) {
	switch {
	case r.silent():
		return "", "", ""
	case r.ok:
		return "+OK", "", r.text
	}
	return "-ERR", r.code, r.text
}

// Refuses: every -ERR refuses.
func (r *reply) Refuses() bool { return !r.ok && !r.silent() }

// Failed: every -ERR counts against the error limit.
func (r *reply) Failed() bool { return !r.ok }

// Closes reports whether the session ends after the reply.
func (r *reply) Closes() bool { return r.close }

// line renders the reply as it goes on the wire, without CRLF.
func (r *reply) line() string {
	if r.ok {
		if r.text == "" {
			return "+OK"
		}
		return "+OK " + r.text
	}
	s := "-ERR "
	if r.code != "" {
		s += "[" + r.code + "] "
	}
	return s + r.text
}

// replies word srvconn's refusals; RFC 3206 section 5's [SYS/TEMP] tells
// a client turned away that it may come back.
var replies = srvconn.Replies{
	Admission:   func(why srvconn.Refusal) srvconn.Reply { return errReply("SYS/TEMP", why.Text()) },
	LineTooLong: errLineTooLong, BareLine: errSyntaxChars,
	TooManyErrors: errTooManyErrors, Shutdown: errShutdown, Timeout: errTimeout, Lost: &reply{close: true},
}

func okReply(text string) *reply          { return &reply{ok: true, text: text} }
func errReply(code, text string) *reply   { return &reply{code: code, text: text} }
func closeReply(code, text string) *reply { return &reply{code: code, text: text, close: true} }

// The replies used in more than one place.
var (
	errUnknown     = errReply("", "Unknown command")
	errSyntax      = errReply("", "Syntax error in arguments")
	errSyntaxChars = errReply("", "Syntax error: control characters or bare CR/LF in command")
	errLineTooLong = errReply("", "Line too long")
	errWrongState  = errReply("", "Command not valid in this state")
	// No RFC 3206 code says "encryption required"; the text does.
	errNeedTLS         = errReply("", "Authentication requires TLS: issue STLS first")
	errNoSuchMsg       = errReply("", "No such message")
	errDeletedMsg      = errReply("", "Message already deleted")
	errShutdown        = closeReply("SYS/TEMP", "Service shutting down, closing connection")
	errTimeout         = closeReply("", "Autologout: idle for too long, closing connection")
	errAuthLineTooLong = errReply("", "Authentication exchange line is too long")
	errTooManyErrors   = closeReply("", "Too many errors, closing connection")
	errStoreFailed     = errReply("SYS/TEMP", "Local error reading the maildrop, try again later")
)
