package smtpd

import (
	"io"

	"github.com/mailsec/mailsec/store"
)

// Envelope is the SMTP envelope of one message (RFC 5321 section 2.3.1).
type Envelope struct {
	// From is the reverse path, "" for the null sender <>.
	From string
	// To are the accepted forward paths, as the client wrote them.
	To []string
	// Mailboxes are the local users the recipients map to, one per entry
	// of To, lower case.
	Mailboxes []string
	// Rcpts has, for each entry of To, its DSN parameters and whether it
	// is local.
	Rcpts []Rcpt
	// AuthUser is the SASL identity of the client, "" when anonymous.
	AuthUser string
	// UTF8 is set when the client used the SMTPUTF8 parameter (RFC 6531).
	UTF8 bool
	// Body is the MAIL BODY parameter in upper case: "", "7BIT" or
	// "8BITMIME" (RFC 6152).
	Body string
	// RequireTLS is the REQUIRETLS parameter (RFC 8689): relay only over
	// verified TLS to servers that keep the requirement, or bounce.
	RequireTLS bool
	// Ret and EnvID are the DSN parameters of MAIL (RFC 3461 section 4.3,
	// 4.4), as sent.
	Ret, EnvID string
}

// Rcpt is one accepted recipient.
type Rcpt struct {
	// Addr is the forward path, as in To.
	Addr string
	// Mailbox is the local user the recipient maps to, "" when the
	// recipient is relayed to another domain.
	Mailbox string
	// Notify and ORcpt are the DSN parameters of RCPT (RFC 3461 section
	// 4.1, 4.2), as sent.
	Notify, ORcpt string
}

// Relayed reports whether any recipient is for another domain.
func (e *Envelope) Relayed() bool {
	for _, r := range e.Rcpts {
		if r.Mailbox == "" {
			return true
		}
	}
	return false
}

// Backend stores accepted messages.
type Backend interface {
	// Deliver reads the message (the Received header smtpd adds included)
	// from msg until io.EOF and returns nil only when it is durably stored
	// for every mailbox of env: smtpd answers 250 on nil. When msg returns
	// an error instead of io.EOF (the message was refused after the fact:
	// too big, bare LF, client gone) Deliver must store nothing and
	// return an error.
	Deliver(env *Envelope, msg io.Reader) error
}

// Maildir is a Backend delivering into the per-user Maildirs of a store.
type Maildir struct{ Store *store.Store }

// Deliver implements Backend.
func (m Maildir) Deliver(env *Envelope, msg io.Reader) error {
	return m.Store.Deliver(env.Mailboxes, msg)
}

// Discard is a Backend that reads and drops every message, for benchmarks
// and tests of the protocol alone.
type Discard struct{}

// Deliver implements Backend.
func (Discard) Deliver(_ *Envelope, msg io.Reader) error {
	_, err := io.Copy(io.Discard, msg)
	return err
}
