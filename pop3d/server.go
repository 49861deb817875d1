// Package pop3d is mailsec's POP3 server (RFC 1939) over the per-user
// Maildirs of package store, for the two kinds of listener a mail host runs:
// POP3 with STLS (port 110, RFC 2595) and POP3S (port 995, implicit TLS,
// RFC 8314). The policy is Domino's inbound rule (docs/requirements.md)
// applied to POP3: credentials are neither advertised nor accepted before TLS; plaintext
// pipelined behind STLS is never executed; a maildrop is locked for one
// session at a time (RFC 1939 section 8) and messages are only removed when
// the client ends the session with QUIT (the UPDATE state).
//
// Each concern has its own file: session.go (the protocol's part of the
// srvconn session loop, dispatch by state), parse.go (command parser),
// stls.go (TLS), auth.go (USER/PASS and SASL), transaction.go (the
// TRANSACTION and UPDATE commands), maildrop.go (the locked mailbox and
// message output), limits.go (resource limits), reply.go (responses),
// observer.go (events for metrics).
package pop3d

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"sync"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/srvconn"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/store"
)

// Kind is the role of a listener.
type Kind int

const (
	// STLS is the plain POP3 port: the greeting is in plaintext and the
	// client must upgrade with STLS (RFC 2595 section 4) before it can
	// log in.
	STLS Kind = iota
	// POP3S is implicit TLS (RFC 8314 section 3): the handshake comes
	// before the greeting.
	POP3S
)

// String returns the kind's configuration name.
func (k Kind) String() string {
	if k == POP3S {
		return "pop3s"
	}
	return "pop3"
}

// Server is a POP3 server. Set the fields, then call Serve once per
// listener; the fields must not change after the first Serve. The zero
// value of every field but TLSConfig, Users and Store is a usable default.
type Server struct {
	// Hostname is the name in the greeting. "" means os.Hostname().
	Hostname string
	// TLSConfig is required: without TLS nobody could ever log in.
	TLSConfig *tls.Config
	// Users checks credentials. A user's maildrop is the Store mailbox of
	// the lower-cased login name. Required.
	Users sasl.UserStore
	// Store holds the maildrops. Required.
	Store *store.Store
	// Limits bound the sessions and the logins of clients; each zero
	// field means the default it documents.
	Limits Limits
	// Logger receives the sessions' log (facility "protocol") and the
	// handshakes' (facility "tls"). nil discards.
	Logger *slog.Logger
	// Observer, when set, is told about logins and retrievals (for
	// metrics); nil means nobody is told.
	Observer Observer

	init sync.Once
	base srvconn.Server
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("pop3d: server closed")

func (s *Server) setup() {
	s.init.Do(func() {
		s.Limits = s.Limits.withDefaults()
		s.base.Init(s.Logger, s.Hostname, s.Limits.MaxSessions, s.Limits.MaxPerIP, srvconn.Config{
			Pool: buffers, Timeout: s.Limits.IdleTimeout, MaxLine: maxSASLLine, MaxErrors: maxErrors, Replies: replies})
	})
}

// Serve accepts connections on ln and runs a session of the given kind for
// each. It returns ErrServerClosed after Shutdown, or the accept error.
func (s *Server) Serve(ln net.Listener, kind Kind) error {
	s.setup()
	if s.TLSConfig == nil || s.Users == nil || s.Store == nil {
		return mailsec.Errorf(mailsec.Config, "pop3d", nil, "%s listener %s needs TLSConfig, Users and Store", kind, ln.Addr())
	}
	if err := s.base.Serve(ln, func(c net.Conn) { s.handle(c, kind) }); err != nil {
		return err
	}
	return ErrServerClosed
}

// Shutdown stops the listeners and ends the sessions: a session waiting for
// a command gets "-ERR [SYS/TEMP]" and is closed without entering the
// UPDATE state, so nothing is deleted (RFC 1939 section 6: only QUIT
// commits); a session sending a message finishes it first. When ctx ends
// first the remaining connections are closed. Shutdown may be called more
// than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.setup()
	return s.base.Shutdown(ctx)
}
