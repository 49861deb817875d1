// Package smtpd is mailsec's SMTP server (RFC 5321) for the three kinds of
// listener a mail host runs: MX (port 25, STARTTLS offered), submission
// (port 587, RFC 6409, STARTTLS and AUTH required) and SMTPS (port 465,
// implicit TLS, RFC 8314). The policy is Domino's inbound STARTTLS
// (docs/requirements.md): STARTTLS is advertised on plain listeners and
// can be required; AUTH is neither advertised nor accepted before TLS;
// plaintext pipelined behind STARTTLS is never executed; bare CR and LF in
// command lines and message data are refused (SMTP smuggling); a message
// is acknowledged only once the Backend made it durable.
//
// Each concern has its own file: session.go (state machine), parse.go
// (command parser), data.go and bdat.go (message readers), starttls.go (TLS
// policy), auth.go (SASL), limits.go (resource limits), received.go (trace
// header), backend.go (delivery and the Backend's checks), error.go (the
// replies of Backend errors), submit.go (what the submission listeners add
// to a message, and the From check), observer.go (events for metrics).
package smtpd

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
)

// Kind is the role of a listener.
type Kind int

const (
	// MX receives mail for the local domains from other servers. STARTTLS
	// is offered; whether it is required is the listener's Policy.
	MX Kind = iota
	// Submission receives mail from users (RFC 6409): STARTTLS is required
	// before MAIL and AUTH, and AUTH before MAIL.
	Submission
	// SMTPS is submission over implicit TLS (RFC 8314 section 3): the TLS
	// handshake comes before the greeting.
	SMTPS
)

// String returns the kind's configuration name.
func (k Kind) String() string {
	switch k {
	case Submission:
		return "submission"
	case SMTPS:
		return "smtps"
	}
	return "mx"
}

// Policy says whether a plain listener requires STARTTLS.
type Policy int

const (
	// TLSMay offers STARTTLS and lets clients go on without it (Domino's
	// negotiated SSL; the default for MX, where RFC 3207 section 4 says a
	// publicly-referenced server must not require TLS).
	TLSMay Policy = iota
	// TLSRequire answers 530 to MAIL (and 538 to AUTH) until STARTTLS
	// succeeded (Domino's "require": a client that does not start TLS sends
	// no mail over the connection).
	TLSRequire
)

// String returns the policy's configuration name.
func (p Policy) String() string {
	if p == TLSRequire {
		return "require"
	}
	return "may"
}

// Users is what the server needs of the user database: SASL credentials
// and the list of local mailboxes. *userdb.DB implements it.
type Users interface {
	sasl.UserStore
	// Exists reports whether name (a lower-cased local part) has a mailbox.
	Exists(name string) bool
}

// Server is an SMTP server. Set the fields, then call Serve once per
// listener; the fields must not change after the first Serve. As with
// net/http.Server the zero value of every field is a usable default except
// Backend.
type Server struct {
	// Hostname is the name in the greeting, the EHLO reply and Received
	// headers. "" means os.Hostname().
	Hostname string
	// Domains are the local domains (case-insensitive): mail is accepted
	// only for <user>@<domain> with user in Users. Empty means "localhost".
	Domains []string
	// TLSConfig enables STARTTLS and SMTPS. nil means no TLS: STARTTLS is
	// not offered, AUTH is never possible and SMTPS listeners fail.
	TLSConfig *tls.Config
	// Users authenticates clients and lists mailboxes. nil means no AUTH
	// and no local recipients.
	Users Users
	// Backend stores accepted messages, and decides on senders and
	// recipients when it implements SenderChecker or RecipientChecker:
	// without the latter the server accepts local mailboxes only, so it
	// relays only for a Backend that says who may (RelayRule). Required.
	Backend Backend
	// Limits bound what one client can take; the zero value holds the
	// documented defaults.
	Limits Limits
	// Logger receives the log with facility "protocol". nil discards.
	Logger *slog.Logger

	// Observer, when set, is told about logins and messages (for
	// metrics); nil means nobody is told.
	Observer Observer

	init sync.Once
	base srvconn.Server
	host string // base.Host
}

// ErrServerClosed is returned by Serve after Shutdown.
var ErrServerClosed = errors.New("smtpd: server closed")

func (s *Server) setup() {
	s.init.Do(func() {
		if len(s.Domains) == 0 {
			s.Domains = []string{"localhost"}
		}
		s.Limits = s.Limits.withDefaults()
		s.base.Init(s.Logger, s.Hostname, s.Limits.MaxSessions, s.Limits.MaxPerIP, srvconn.Config{
			Pool: buffers, Timeout: s.Limits.CommandTimeout, MaxLine: maxSASLLine, MaxErrors: maxErrors, Replies: replies})
		s.host = s.base.Host
	})
}

// Serve accepts connections on ln and runs a session for each, with the
// given kind and policy (Submission and SMTPS always require TLS). It
// returns ErrServerClosed after Shutdown, or the accept error.
func (s *Server) Serve(ln net.Listener, kind Kind, policy Policy) error {
	s.setup()
	if s.Backend == nil {
		return mailsec.Errorf(mailsec.Config, "smtpd", nil, "no Backend")
	}
	if s.TLSConfig == nil && (kind == SMTPS || kind == Submission || policy == TLSRequire) {
		return mailsec.Errorf(mailsec.Config, "smtpd", nil, "%s listener %s needs a TLS configuration", kind, ln.Addr())
	}
	if err := s.base.Serve(ln, func(c net.Conn) { s.handle(c, kind, policy) }); err != nil {
		return err
	}
	return ErrServerClosed
}

// Shutdown stops the listeners and ends the sessions gracefully: a session
// waiting for a command is sent "421 4.3.2" at once, a session in the
// middle of DATA or BDAT finishes the message and gets the 421 at its next
// command. When ctx ends first the remaining connections are closed and
// their Backends' contexts cancelled, which aborts their deliveries
// (nothing half-written reaches new/). Shutdown
// may be called more than once.
func (s *Server) Shutdown(ctx context.Context) error {
	s.setup()
	return s.base.Shutdown(ctx)
}
