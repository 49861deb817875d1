package smtpd

import (
	"context"
	"io"
	"net/netip"

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

// Backend stores accepted messages. A Backend may also implement
// SenderChecker, RecipientChecker and FromChecker to take part in the
// decisions on a transaction, as emersion/go-smtp's add-on interfaces do;
// smtpd asks for them once per message with a type assertion.
//
// Any error a Backend or a checker returns is answered with the reply it
// carries (an *Error, or a *mailsec.Error with an SMTP Reply, found with
// errors.As), or with "451 4.3.0" when it carries none, so that a failure
// the Backend did not word is always a temporary one.
type Backend interface {
	// Deliver reads the message (the Received header smtpd adds included)
	// from msg until io.EOF and returns nil only when it is durably stored
	// for every mailbox of env: smtpd answers 250 on nil. When msg returns
	// an error instead of io.EOF (the message was refused after the fact:
	// too big, bare LF, client gone) Deliver must store nothing and
	// return an error. ctx ends with the session: when the client is
	// gone, or Shutdown's context ended and closed the connection; a
	// Backend that waits on something (a database, a queue) should give
	// up then.
	Deliver(ctx context.Context, env *Envelope, msg io.Reader) error
}

// SenderChecker is an optional interface of a Backend that decides which
// envelope senders a client may use.
type SenderChecker interface {
	// CheckSender is called for every MAIL FROM whose syntax and
	// parameters smtpd accepted, with the reverse path ("" for the null
	// sender <>); an error refuses the command with its reply. Without a
	// SenderChecker every sender is accepted.
	CheckSender(ctx context.Context, s SessionInfo, from string) error
}

// RecipientChecker is an optional interface of a Backend that decides
// which recipients a transaction takes, in place of the Server's own rule.
type RecipientChecker interface {
	// CheckRecipient is called for every RCPT TO whose syntax and
	// parameters smtpd accepted, unless the address is in a local domain
	// and Users does not know its mailbox (that is "550 5.1.1" at once).
	// r.Mailbox is the local mailbox, or "" for an address of another
	// domain. nil accepts the recipient: one of another domain is then
	// the Backend's to relay, so a checker must decide who may relay
	// (RelayRule is the usual rule). An error refuses it with its reply.
	//
	// Without a RecipientChecker the Server accepts local mailboxes and
	// refuses every other address with "550 5.7.1 Relay access denied":
	// it never relays unless its Backend says so.
	CheckRecipient(ctx context.Context, s SessionInfo, r *Rcpt) error
}

// FromChecker is an optional interface of a Backend that checks the
// author of mail submitted on the Submission and SMTPS listeners.
type FromChecker interface {
	// CheckFrom is called once the header section of a submitted message
	// has been read, with the addresses of its From header field (RFC
	// 5322 section 3.6.2; nil when there is none). An error refuses the
	// message at the end of its data with the error's reply, or "550
	// 5.7.1" when it carries none, and nothing is delivered. The MX
	// listener never calls it: it does not inspect the mail it relays or
	// delivers.
	CheckFrom(ctx context.Context, s SessionInfo, env *Envelope, from []string) error
}

// RelayRule is the usual answer to who may relay: authenticated clients of
// the Submission and SMTPS listeners (RFC 6409 section 4.3) when
// Submitters is set, and clients whose address is in Networks, on any
// listener (Postfix's mynetworks). The zero value lets nobody relay.
// Embed it in a Backend that queues mail for other domains to make it a
// RecipientChecker.
type RelayRule struct {
	// Submitters lets authenticated submitters relay.
	Submitters bool
	// Networks are client networks that may relay without
	// authenticating; empty means none. Only for explicitly trusted
	// hosts: a wide prefix here makes an open relay.
	Networks []netip.Prefix
}

// MayRelay reports whether the client of s may send to other domains. The
// MX listener relays for nobody outside Networks, and it offers no AUTH.
func (r RelayRule) MayRelay(s SessionInfo) bool {
	if r.Submitters && s.Kind != MX && s.AuthUser != "" {
		return true
	}
	a := s.RemoteAddr.Unmap()
	for _, p := range r.Networks {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// CheckRecipient implements RecipientChecker: local mailboxes are taken,
// other domains only from a client that MayRelay (RFC 5321 section 7.1:
// never an open relay).
func (r RelayRule) CheckRecipient(_ context.Context, s SessionInfo, rc *Rcpt) error {
	if rc.Mailbox != "" || r.MayRelay(s) {
		return nil
	}
	return ErrRelayDenied
}

// ErrRelayDenied is the refusal of a recipient of another domain from a
// client that may not relay.
var ErrRelayDenied = &Error{Code: 550, Enhanced: "5.7.1", Message: "Relay access denied"}

// Maildir is a Backend delivering into the per-user Maildirs of a store.
type Maildir struct{ Store *store.Store }

// Deliver implements Backend: it is the final delivery, which adds
// Return-Path and Delivered-To (store.DeliverMail).
func (m Maildir) Deliver(_ context.Context, env *Envelope, msg io.Reader) error {
	return m.Store.DeliverMail(env.Delivery(), msg)
}

// Delivery returns the envelope as the store's final delivery records
// it: the sender, and each local mailbox once with the address it was
// first named by.
func (e *Envelope) Delivery() store.Delivery {
	d := store.Delivery{From: e.From}
	seen := map[string]bool{}
	for _, r := range e.Rcpts {
		if r.Mailbox != "" && !seen[r.Mailbox] {
			seen[r.Mailbox] = true
			d.To = append(d.To, store.LocalRecipient(r.Mailbox, r.Addr))
		}
	}
	return d
}

// Discard is a Backend that reads and drops every message, for benchmarks
// and tests of the protocol alone.
type Discard struct{}

// Deliver implements Backend.
func (Discard) Deliver(_ context.Context, _ *Envelope, msg io.Reader) error {
	_, err := io.Copy(io.Discard, msg)
	return err
}
