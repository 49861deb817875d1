package smtpd

import (
	"errors"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/dsn"
)

// Error is a refusal in the words of a Backend or checker: smtpd answers
// the command it refuses with this reply.
type Error struct {
	// Code is the reply code, 400 to 599 (RFC 5321 section 4.2); any
	// other value makes the error one that carries no reply.
	Code int
	// Enhanced is the RFC 3463 status code, such as "5.7.1"; "" or one
	// whose class is not Code's means "4.0.0" or "5.0.0" (RFC 3463
	// section 3.1: the class matches the reply code's first digit).
	Enhanced string
	// Message is the reply text; lines are separated by "\n". "" means
	// "Requested action not taken".
	Message string
}

// Error renders the reply as it would go on the wire, on one line.
func (e *Error) Error() string {
	return strconv.Itoa(e.Code) + " " + e.Enhanced + " " + strings.ReplaceAll(e.Message, "\n", " ")
}

// errCheckFailed answers a command when a check of the Backend failed
// without a reply of its own: a temporary failure, so that the client
// tries again rather than bounce.
var errCheckFailed = rep(451, "4.3.0", "Local error in processing, try again later")

// maxReplyText bounds one line of a Backend's reply text, so that with
// the code and status code it stays within RFC 5321 section 4.5.3.1.5's
// 512 octets.
const maxReplyText = 480

// replyFor returns the reply for an error of a Backend or checker: the
// reply it carries (an *Error, or a *mailsec.Error with an SMTP Reply, as
// a Backend passing on another server's refusal has), else fallback. The
// text is made printable ASCII and bounded, as it may come from anywhere.
func replyFor(err error, fallback *reply) *reply {
	var r *reply
	if errors.As(err, &r) {
		return r // one of smtpd's own, such as a refusal of the data
	}
	var code int
	var enh, text string
	var se *Error
	var me *mailsec.Error
	switch {
	case errors.As(err, &se):
		code, enh, text = se.Code, se.Enhanced, se.Message
	case errors.As(err, &me) && me.Reply != nil:
		code, enh, text = me.Reply.Code, me.Reply.Enhanced, strings.Join(me.Reply.Lines, "\n")
	default:
		return fallback
	}
	if code < 400 || code > 599 {
		return fallback
	}
	enh = dsn.StatusFromReply(code, enh)
	if text == "" {
		text = "Requested action not taken"
	}
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		lines[i] = asciiText(strings.TrimRight(l, "\r"))
	}
	return rep(code, enh, strings.Join(lines, "\n"))
}

// asciiText makes a line of reply text safe to send: printable ASCII
// only (RFC 5321 section 4.2: textstring), anything else shown as "?",
// at most maxReplyText octets.
func asciiText(l string) string {
	b := []byte(l[:min(len(l), maxReplyText)])
	for i, c := range b {
		if (c < ' ' && c != '\t') || c > '~' {
			b[i] = '?'
		}
	}
	return string(b)
}
