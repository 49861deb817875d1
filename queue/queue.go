// Package queue is the seam between accepting outbound mail and delivering
// it: a Queue holds each message (its envelope, the per-recipient state and
// the body) from the moment the submitter is told 250 until every recipient
// has a final outcome. The embedded store (package queue/embedded) is the
// default; a shared database (PostgreSQL) implements the same interface
// for several nodes.
//
// The contract every implementation keeps:
//   - Enqueue returns only once body and entry are durable (fsynced or
//     committed): the 250 to the submitter waits for it (RFC 5321 section
//     6.1).
//   - Claim hands a due entry to one deliverer at a time, under a Lease
//     with an expiry. A deliverer that dies loses its claim when the lease
//     runs out, and the entry becomes due again; Record and Complete with
//     a lease that is no longer the entry's current one fail with
//     ErrLeaseLost and change nothing (fencing), so a deliverer that lost
//     its lease never overwrites the work of the one that holds it now.
//   - A crash at any moment loses no enqueued message; a delivery whose
//     outcome was not yet recorded is made again, so a message is
//     delivered at most once more than it should be.
package queue

import (
	"context"
	"errors"
	"io"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
)

// ID identifies a queued message; it is unique within a queue and safe to
// use in file names, logs and command lines (letters and digits only).
type ID string

// Status is where one recipient stands.
type Status int

const (
	// Pending recipients are still to be delivered.
	Pending Status = iota
	// Delivered: a server accepted the message for the recipient.
	Delivered
	// Failed: permanently refused or expired; a bounce was sent unless
	// the sender was the null sender.
	Failed
)

// String returns "pending", "delivered" or "failed".
func (s Status) String() string {
	switch s {
	case Delivered:
		return "delivered"
	case Failed:
		return "failed"
	}
	return "pending"
}

// MarshalText implements encoding.TextMarshaler, for JSON.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Status) UnmarshalText(b []byte) error {
	switch string(b) {
	case "pending":
		*s = Pending
	case "delivered":
		*s = Delivered
	case "failed":
		*s = Failed
	default:
		return errors.New("queue: unknown recipient status " + string(b))
	}
	return nil
}

// Envelope is what a message was submitted with (RFC 5321 section 2.3.1).
type Envelope struct {
	// From is the reverse path, "" for the null sender <>, to which no
	// bounce is ever sent (RFC 5321 section 6.1).
	From string `json:"from"`
	// Recipients are the forward paths with their state.
	Recipients []Recipient `json:"recipients"`
	// AuthUser is the SASL identity that submitted the message, "" for
	// mail the server generated itself (bounces, delay notices).
	AuthUser string `json:"auth_user,omitempty"`
	// UTF8 is set when the message was submitted with SMTPUTF8 (RFC 6531).
	UTF8 bool `json:"utf8,omitempty"`
	// Body is the MAIL BODY parameter, "" or "8BITMIME" (RFC 6152).
	Body string `json:"body,omitempty"`
	// RequireTLS is the REQUIRETLS MAIL parameter (RFC 8689).
	RequireTLS bool `json:"require_tls,omitempty"`
	// Ret and EnvID are the DSN parameters of MAIL (RFC 3461 section 4):
	// "FULL" or "HDRS", and the submitter's envelope identifier.
	Ret   string `json:"ret,omitempty"`
	EnvID string `json:"envid,omitempty"`
}

// Recipient is one forward path and its delivery state.
type Recipient struct {
	// Addr is the mailbox, local@domain.
	Addr string `json:"addr"`
	// Notify and ORcpt are the DSN parameters of RCPT (RFC 3461 section
	// 4.1, 4.2): the NOTIFY list as sent ("" means the default, FAILURE
	// and DELAY) and the original recipient "type;address".
	Notify string `json:"notify,omitempty"`
	ORcpt  string `json:"orcpt,omitempty"`
	// Status is where delivery stands for this recipient.
	Status Status `json:"status"`
	// Last is the outcome of the latest attempt for this recipient, nil
	// before the first.
	Last *Outcome `json:"last,omitempty"`
}

// Domain returns the part of Addr after the last "@", in lower case.
func (r Recipient) Domain() string {
	at := strings.LastIndexByte(r.Addr, '@')
	if at < 0 {
		return ""
	}
	return strings.ToLower(r.Addr[at+1:])
}

// NotifyOn reports whether the submitter asked to be told of the event
// ("FAILURE", "DELAY", "SUCCESS"). Without NOTIFY, failures and delays are
// reported (RFC 3461 section 4.1).
func (r Recipient) NotifyOn(event string) bool {
	if r.Notify == "" {
		return event == "FAILURE" || event == "DELAY"
	}
	for _, n := range strings.Split(strings.ToUpper(r.Notify), ",") {
		if n == event {
			return true
		}
	}
	return false
}

// Outcome is what one delivery attempt came to for one recipient.
type Outcome struct {
	// Time is when the attempt ended.
	Time time.Time `json:"time"`
	// Host is the server that answered (its MX name), "" when none was
	// reached; Addr is the address connected to.
	Host string `json:"host,omitempty"`
	Addr string `json:"addr,omitempty"`
	// Reply is the server's reply to the recipient (to RCPT, MAIL or the
	// end of data, whichever decided), nil when no server refused it.
	Reply *mailsec.Reply `json:"reply,omitempty"`
	// Code is the mailsec error code of a failure ("TCPConnect",
	// "TLSCertName", ...), "" on success.
	Code string `json:"code,omitempty"`
	// Detail says what went wrong, for operators and bounces.
	Detail string `json:"detail,omitempty"`
	// TLS is the transport security of the attempt.
	TLS *TLSRecord `json:"tls,omitempty"`
}

// Permanent reports whether the outcome is a permanent failure: a 5xx
// reply, or a failure the relay classed as permanent (Code set and the
// status of Reply in class 5).
func (o *Outcome) Permanent() bool {
	return o != nil && o.Reply != nil && o.Reply.Code >= 500
}

// TLSRecord says which TLS policy applied to a delivery attempt and what
// was negotiated.
type TLSRecord struct {
	// Policy is the policy level that applied: none, may, encrypt,
	// verify, dane, dane-only, mta-sts.
	Policy string `json:"policy"`
	// Version and CipherSuite are empty when the session stayed plain.
	Version     string `json:"version,omitempty"`
	CipherSuite string `json:"cipher_suite,omitempty"`
	// Verdict is what the certificate check concluded: "verified",
	// "untrusted", "name-mismatch", "dane-matched", ... or "" in plain.
	Verdict string `json:"verdict,omitempty"`
}

// Entry is a queued message as a deliverer or an operator sees it.
type Entry struct {
	ID ID `json:"id"`
	Envelope
	// Size is the body's length in octets.
	Size int64 `json:"size"`
	// Created is when the message was enqueued.
	Created time.Time `json:"created"`
	// Attempts counts the delivery attempts recorded so far.
	Attempts int `json:"attempts"`
	// NextAttempt is when the entry is next due.
	NextAttempt time.Time `json:"next_attempt"`
	// DelayNotified is set once a delay notice went to the sender.
	DelayNotified bool `json:"delay_notified,omitempty"`
	// Lease is the claim under which a deliverer holds the entry; nil
	// when the entry did not come from Claim.
	Lease *Lease `json:"-"`
	// HeldBy, in what Get and List return, names the deliverer that holds
	// a live lease on the entry (a delivery in progress), nil otherwise.
	HeldBy *Holder `json:"held_by,omitempty"`
}

// Holder is who holds a lease, for operators: a node of a shared queue
// ("local" for the embedded one) and when the lease lapses.
type Holder struct {
	Node  string    `json:"node"`
	Until time.Time `json:"until"`
}

// Pending returns the indexes of the recipients still to deliver.
func (e *Entry) Pending() []int {
	var out []int
	for i, r := range e.Recipients {
		if r.Status == Pending {
			out = append(out, i)
		}
	}
	return out
}

// LastOutcome returns the latest outcome of any recipient, nil when no
// attempt was recorded.
func (e *Entry) LastOutcome() *Outcome {
	var last *Outcome
	for _, r := range e.Recipients {
		if r.Last != nil && (last == nil || r.Last.Time.After(last.Time)) {
			last = r.Last
		}
	}
	return last
}

// Lease is one deliverer's claim on an entry.
type Lease struct {
	// ID is the entry.
	ID ID
	// Token is unique per claim: a later claim of the same entry gets a
	// different one, which is how a stale deliverer is fenced off.
	Token string
	// Expires is when the claim lapses unless Record or Complete ends it
	// first.
	Expires time.Time
}

// Attempt is the outcome of one delivery run over an entry.
type Attempt struct {
	// Recipients holds, for each recipient index attempted, its new status
	// and outcome; recipients not named keep theirs.
	Recipients map[int]RecipientUpdate
	// NextAttempt is when the entry is due again if a recipient is still
	// pending; the zero time means at once.
	NextAttempt time.Time
	// DelayNotified marks that a delay notice has now been sent.
	DelayNotified bool
}

// RecipientUpdate is one recipient's new state.
type RecipientUpdate struct {
	Status  Status
	Outcome *Outcome
}

// Stats are counts over the whole queue (the database's, for a shared
// one), for metrics and operators.
type Stats struct {
	// Messages is the number of entries; Recipients of pending
	// recipients; Octets the sum of body sizes.
	Messages, Recipients int
	Octets               int64
	// Deferred counts the entries that have had at least one attempt.
	Deferred int
	// Oldest is the creation time of the oldest entry, zero when empty.
	Oldest time.Time
}

// Queue is a durable queue of outbound messages. Implementations are safe
// for concurrent use.
type Queue interface {
	// Enqueue stores a message whose recipients are all Pending and
	// returns its ID once body and entry are durable. body is read to
	// io.EOF; if it returns another error nothing is stored and that
	// error is returned (smtpd refuses a message after the fact that way).
	Enqueue(ctx context.Context, env *Envelope, body io.Reader) (ID, error)
	// Claim leases up to max entries that are due (NextAttempt not after
	// now and not leased, or whose lease expired) for the duration lease,
	// oldest due first.
	Claim(ctx context.Context, max int, lease time.Duration) ([]*Entry, error)
	// Body opens a message's body for reading.
	Body(ctx context.Context, id ID) (io.ReadCloser, error)
	// Record applies an attempt's outcome under a lease and ends the
	// lease. It fails with ErrLeaseLost when the lease is not the entry's
	// current one. Recording an entry with no pending recipient left
	// leaves it for Complete.
	Record(ctx context.Context, l *Lease, a *Attempt) error
	// Complete removes the entry and its body, under a lease: every
	// recipient has its final outcome. ErrLeaseLost as for Record.
	Complete(ctx context.Context, l *Lease) error

	Admin
	// Wake returns a channel that receives a value (without blocking the
	// sender: it may be coalesced) whenever an entry becomes due earlier
	// than the deliverers may expect: an Enqueue or a Retry, in this
	// process or, for a shared queue, another node. It may also fire
	// when nothing is due; a deliverer just asks Claim.
	Wake() <-chan struct{}
	// Close releases the queue. Calls after Close fail with ErrClosed;
	// calls in progress may finish or fail, but a call that returned nil
	// took effect.
	Close() error
}

// Admin is what operators do with a queue (mailsec queue list, show,
// retry, delete); a running server offers it over its control socket too.
type Admin interface {
	// Get returns one entry; ErrNotFound when there is none.
	Get(ctx context.Context, id ID) (*Entry, error)
	// List returns every entry, oldest first.
	List(ctx context.Context) ([]*Entry, error)
	// Retry makes an entry due now (an operator's "retry"), ending any
	// lease so that a stale deliverer cannot record over it.
	Retry(ctx context.Context, id ID) error
	// Delete removes an entry and its body without any bounce.
	Delete(ctx context.Context, id ID) error
	// Stats counts the queue's contents.
	Stats(ctx context.Context) (Stats, error)
}

// Errors every implementation returns (wrapped in a *mailsec.Error with a
// detail, so errors.Is works).
var (
	// ErrNotFound: no entry has the ID.
	ErrNotFound = errors.New("queue: no such message")
	// ErrLeaseLost: the lease expired and the entry was claimed again,
	// retried or deleted; the caller's outcome is discarded.
	ErrLeaseLost = errors.New("queue: lease lost")
	// ErrClosed: the queue was closed.
	ErrClosed = errors.New("queue: closed")
)

// ValidID reports whether s can be an ID (1 to 64 letters and digits), so
// that an ID from a command line never reaches a path or a query as
// anything else.
func ValidID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			return false
		}
	}
	return true
}
