package pop3d

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
	errNeedTLS     = errReply("", "Authentication requires TLS: issue STLS first")
	errNoSuchMsg   = errReply("", "No such message")
	errDeletedMsg  = errReply("", "Message already deleted")
	errShutdown    = closeReply("SYS/TEMP", "Service shutting down, closing connection")
	errTimeout     = closeReply("", "Autologout: idle for too long, closing connection")
	errStoreFailed = errReply("SYS/TEMP", "Local error reading the maildrop, try again later")
)
