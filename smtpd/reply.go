package smtpd

import (
	"bufio"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec/internal/srvconn"
)

// reply is an SMTP reply: code, RFC 3463 enhanced status code (RFC 2034
// ENHANCEDSTATUSCODES) and text. A *reply is also the error value of the
// parsing and policy helpers, so a failure carries its answer.
type reply struct {
	code  int
	enh   string
	text  string
	close bool // the session ends after this reply
}

// Error makes a reply usable as an error value.
func (r *reply) Error() string { return strconv.Itoa(r.code) + " " + r.enh + " " + r.text }

// Status returns the code, enhanced code and text for the log.
func (r *reply) Status() (code, enh, text string) {
	if r.code == 0 {
		return "", "", ""
	}
	return strconv.Itoa(r.code), r.enh, r.text
}

// Refuses: 4yz and 5yz replies refuse (RFC 5321 section 4.2.1).
func (r *reply) Refuses() bool { return r.code >= 400 }

// Failed: 5yz replies count against the error limit (RFC 5321 section
// 4.2.1: a permanent negative completion).
func (r *reply) Failed() bool { return r.code >= 500 }

// Closes reports whether the session ends after the reply.
func (r *reply) Closes() bool { return r.close }

// WriteReply renders the reply as it goes on the wire, straight into w;
// multi-line texts use the "250-" continuation form of RFC 5321 section
// 4.2.1. A silent close (code 0) writes nothing.
func (r *reply) WriteReply(w *bufio.Writer) {
	if r.code == 0 {
		return
	}
	text := r.text
	for {
		l, rest, more := strings.Cut(text, "\n")
		w.WriteByte(byte('0' + r.code/100))
		w.WriteByte(byte('0' + r.code/10%10))
		w.WriteByte(byte('0' + r.code%10))
		if more {
			w.WriteByte('-')
		} else {
			w.WriteByte(' ')
		}
		// RFC 2034 section 4 puts the status code on every line; the
		// EHLO reply, which is exempt, has none.
		if r.enh != "" {
			w.WriteString(r.enh)
			w.WriteByte(' ')
		}
		w.WriteString(l)
		w.WriteString("\r\n")
		if !more {
			return
		}
		text = rest
	}
}

// The replies used in more than one place.
var (
	errSyntaxChars     = rep(500, "5.5.2", "Syntax error: control characters or bare CR/LF in command")
	errUnknown         = rep(500, "5.5.1", "Command not recognized")
	errLineTooLong     = rep(500, "5.5.2", "Line too long")
	errBadSequence     = rep(503, "5.5.1", "Bad sequence of commands")
	errNeedHelo        = rep(503, "5.5.1", "Send EHLO first")
	errNeedMail        = rep(503, "5.5.1", "Need MAIL command first")
	errNeedRcpt        = rep(503, "5.5.1", "Need RCPT command first")
	errNeedTLS         = rep(530, "5.7.0", "Must issue a STARTTLS command first")
	errNeedAuth        = rep(530, "5.7.0", "Authentication required")
	errAuthNeedsTLS    = rep(538, "5.7.11", "Encryption required for requested authentication mechanism")
	errShutdown        = &reply{code: 421, enh: "4.3.2", text: "Service shutting down, closing transmission channel", close: true}
	errTimeout         = &reply{code: 421, enh: "4.4.2", text: "Timeout, closing transmission channel", close: true}
	errConnection      = &reply{code: 421, enh: "4.4.2", text: "Connection error", close: true}
	errAuthLineTooLong = rep(500, "5.5.6", "Authentication exchange line is too long")
	errTooManyErrors   = &reply{code: 421, enh: "4.7.0", text: "Too many errors, closing transmission channel", close: true}
	errTooBig          = rep(552, "5.3.4", "Message size exceeds fixed maximum message size")
	errBareLF          = rep(554, "5.6.0", "Message rejected: bare LF or CR not allowed (RFC 5321 section 2.3.8)")
	errNUL             = rep(554, "5.6.0", "Message rejected: NUL octet not allowed (RFC 5322 section 2.1)")
	errLongTextLine    = rep(554, "5.6.0", "Message rejected: line longer than 1000 octets (RFC 5321 section 4.5.3.1.6)")
	errStoreFailed     = rep(451, "4.3.0", "Local error in processing, try again later")
	errParamSyntax     = rep(501, "5.5.4", "Syntax error in parameters")
	okReply            = rep(250, "2.0.0", "OK")
	okSender           = rep(250, "2.1.0", "Sender OK")
	okRecipient        = rep(250, "2.1.5", "Recipient OK")
)

// replies word srvconn's refusals.
var replies = srvconn.Replies{
	Admission: func(why srvconn.Refusal) srvconn.Reply {
		if why == srvconn.ShuttingDown {
			return rep(421, "4.3.2", why.Text())
		}
		return rep(421, "4.7.0", why.Text())
	},
	LineTooLong: errLineTooLong, BareLine: errSyntaxChars,
	TooManyErrors: errTooManyErrors, Shutdown: errShutdown, Timeout: errTimeout, Lost: &reply{close: true},
}

// rep makes a reply that keeps the session open.
func rep(code int, enh, text string) *reply { return &reply{code: code, enh: enh, text: text} }
