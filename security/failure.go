package security

import "crypto/tls"

// SessionError is the error of a session that failed after it connected,
// with what had been secured by then: a login refused after STARTTLS
// succeeded still reports the TLS that was set up and which drivers
// opened. The smtp and pop3 Dial functions return one when the connection
// was made; errors.As finds it, and errors.Is, mailsec.CodeOf and
// mailsec.ReplyOf see through it to Err.
type SessionError struct {
	// Err is what failed.
	Err error
	// State is the TLS state of the session when it failed; nil when TLS
	// had not been set up.
	State *tls.ConnectionState
	// Context is the session's security context: its Reports say which
	// drivers opened, failed or were never reached.
	Context *Context
}

// Error returns Err's text.
func (e *SessionError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *SessionError) Unwrap() error { return e.Err }

// TLS returns State, so that a failed session is read like a client.
func (e *SessionError) TLS() *tls.ConnectionState { return e.State }

// Security returns Context, so that a failed session is read like a client.
func (e *SessionError) Security() *Context { return e.Context }
