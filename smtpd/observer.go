package smtpd

import (
	"crypto/tls"
	"net"
	"net/netip"
	"time"
)

// Observer is told what happens in a server's sessions, for metrics: the
// server calls it directly at each event instead of leaving it to be read
// back out of the log. Its methods are called from the session goroutines,
// concurrently, and must return quickly.
type Observer interface {
	// Auth is called for every AUTH exchange that reached a verdict, with
	// the mechanism in upper case.
	Auth(s SessionInfo, mechanism string, ok bool)
	// Message is called for every message whose transfer (DATA, or BDAT
	// chunks) began, once its fate is known.
	Message(s SessionInfo, m MessageInfo)
}

// SessionInfo says which session an event belongs to, and who its client
// is, for the Observer and the Backend's checks.
type SessionInfo struct {
	// ID is the session id of the log and the Received header.
	ID string
	// Kind is the listener's kind.
	Kind Kind
	// Conn is the connection the listener accepted (under TLS, the
	// connection TLS runs over), so that an observer that wrapped the
	// listener can recognise its own connections.
	Conn net.Conn
	// RemoteAddr is the client's IP address.
	RemoteAddr netip.Addr
	// Helo is the name the client gave in EHLO or HELO, "" before.
	Helo string
	// AuthUser is the SASL identity of the client, "" when anonymous.
	AuthUser string
	// TLS is the connection's TLS state, nil before TLS.
	TLS *tls.ConnectionState
}

// MessageInfo is the outcome of one message transfer.
type MessageInfo struct {
	// Outcome is what became of the message.
	Outcome Outcome
	// Octets is the message size as received, after dot-unstuffing and
	// without the Received header; for a refused message as much as was
	// read.
	Octets int64
	// StoreTime is how long the Backend took from the last octet to the
	// message being durable (what the 250 reply waited for); only set
	// when Outcome is Accepted.
	StoreTime time.Duration
}

// Outcome classes what became of a message.
type Outcome int

const (
	// Accepted: stored and acknowledged with 250.
	Accepted Outcome = iota
	// RefusedSize: over Limits.MaxMessageSize (552 5.3.4, RFC 1870).
	RefusedSize
	// RefusedContent: a bare CR or LF, or a line over 1000 octets (554
	// 5.6.0, RFC 5321 sections 2.3.8 and 4.5.3.1.6).
	RefusedContent
	// FailedTransfer: the message never arrived whole (the client went
	// away or timed out, the transaction was reset or aborted).
	FailedTransfer
	// FailedStore: the Backend could not store it (451 4.3.0).
	FailedStore
	// RefusedPolicy: the Backend refused it with a reply of its own
	// (an *Error), or its FromChecker did.
	RefusedPolicy
)

// String returns the outcome's metric label: accepted, size, content,
// transfer, store or policy.
func (o Outcome) String() string {
	switch o {
	case RefusedSize:
		return "size"
	case RefusedContent:
		return "content"
	case FailedTransfer:
		return "transfer"
	case FailedStore:
		return "store"
	case RefusedPolicy:
		return "policy"
	}
	return "accepted"
}

// refusalOutcome classes the reply a message was refused with.
func refusalOutcome(r *reply) Outcome {
	switch r {
	case errTooBig:
		return RefusedSize
	case errBareLF, errNUL, errLongTextLine:
		return RefusedContent
	}
	return FailedTransfer
}

// info identifies the session to the Observer.
func (ss *session) info() SessionInfo {
	addr, _ := netip.ParseAddr(ss.ip)
	return SessionInfo{ID: ss.id, Kind: ss.kind, Conn: ss.c.Raw, RemoteAddr: addr, Helo: ss.helo,
		AuthUser: ss.authUser, TLS: ss.tls}
}

// observeAuth tells the Observer, if any, about an AUTH verdict.
func (ss *session) observeAuth(mech string, ok bool) {
	if o := ss.srv.Observer; o != nil {
		o.Auth(ss.info(), mech, ok)
	}
}

// observeMessage tells the Observer, if any, about a message's fate.
func (ss *session) observeMessage(m MessageInfo) {
	if o := ss.srv.Observer; o != nil {
		o.Message(ss.info(), m)
	}
}
