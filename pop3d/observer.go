package pop3d

import "net"

// Observer is told what happens in a server's sessions, for metrics: the
// server calls it directly at each event instead of leaving it to be read
// back out of the log. Its methods are called from the session goroutines,
// concurrently, and must return quickly.
type Observer interface {
	// Auth is called for every login that reached a verdict: mechanism is
	// "USER" for USER/PASS, else the SASL mechanism in upper case. A
	// login whose credentials were right but whose maildrop was locked
	// ([IN-USE]) or could not be opened is not reported.
	Auth(s SessionInfo, mechanism string, ok bool)
	// Retrieved is called for every message sent in full by RETR (not
	// TOP), with its size as read from the store.
	Retrieved(s SessionInfo, octets int64)
}

// SessionInfo says which session an event belongs to.
type SessionInfo struct {
	// ID is the session id of the log.
	ID string
	// Kind is the listener's kind.
	Kind Kind
	// Conn is the connection the listener accepted (under TLS, the
	// connection TLS runs over), so that an observer that wrapped the
	// listener can recognise its own connections.
	Conn net.Conn
}

// info identifies the session to the Observer.
func (ss *session) info() SessionInfo {
	return SessionInfo{ID: ss.c.ID, Kind: ss.kind, Conn: ss.c.Raw}
}
