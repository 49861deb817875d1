package sasl

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/mailsec/mailsec"
)

// Server is one authentication exchange, server side.
type Server interface {
	// Next takes the client's response (nil for "no initial response";
	// empty slice for an empty response) and returns the next challenge,
	// or done=true when the exchange ended successfully. A failed exchange
	// returns a *mailsec.Error: Protocol for a malformed message, and one
	// matching errors.Is(err, ErrBadCredentials) for wrong credentials.
	// Once the exchange ended, further calls fail.
	Next(response []byte) (challenge []byte, done bool, err error)
	// Identity is the authenticated user after done.
	Identity() string
}

// UserStore is the verifier of credentials, implemented by the server's
// user store.
type UserStore interface {
	// CheckPassword reports whether password is user's password. It
	// should compare in constant time (crypto/subtle or a password hash)
	// so that response times do not leak how much of a guess was right.
	CheckPassword(user, password string) bool
	// SCRAMSHA256 returns the user's stored SCRAM-SHA-256 credentials.
	SCRAMSHA256(user string) (StoredCredentials, bool)
}

// ErrBadCredentials is wrapped by the *mailsec.Error a Server returns when
// the client authenticated with a wrong user name, password or proof, or
// asked to act as another user: the reply is then 535 5.7.8 (RFC 4954),
// not a syntax error. The mailsec catalogue has no code of its
// own for a rejected login, so the Error carries AuthUnavailable.
var ErrBadCredentials = errors.New("invalid credentials")

// ServerMechanisms lists what NewServer supports, strongest first, ready
// for the EHLO AUTH keyword or the POP3 SASL capability.
func ServerMechanisms() []string {
	return []string{SCRAMSHA256, Plain, Login}
}

// NewServer returns the server side of mech (PLAIN, LOGIN or SCRAM-SHA-256,
// any case) for the connection. Like the client, it refuses every
// mechanism off TLS unless cs.AllowPlaintext: PLAIN and LOGIN would put the
// password on the wire (RFC 4616 section 6) and SCRAM would hand an
// eavesdropper material for an offline attack (RFC 5802 section 9); the
// caller answers 538 5.7.11 (RFC 4954 section 6).
func NewServer(mech string, users UserStore, cs ConnState) (Server, error) {
	name := strings.ToUpper(mech)
	if !slices.Contains(ServerMechanisms(), name) {
		return nil, &mailsec.Error{Code: mailsec.AuthUnavailable, Op: "AUTH",
			Detail: "unsupported SASL mechanism " + quote(mech)}
	}
	if users == nil {
		return nil, configError(name, "no user store to check %s credentials against", name)
	}
	if cs.TLS == nil && !cs.AllowPlaintext {
		return nil, &mailsec.Error{Code: mailsec.AuthUnavailable, Op: "AUTH " + name,
			Detail: "refusing " + name + " authentication without TLS"}
	}
	switch name {
	case Plain:
		return &plainServer{users: users}, nil
	case Login:
		return &loginServer{users: users}, nil
	default:
		return &scramServer{users: users}, nil
	}
}

// badCredentials is the failure of a login attempt; the user name is
// quoted so that a hostile one cannot forge log lines.
func badCredentials(mech, user string) error {
	return &mailsec.Error{Code: mailsec.AuthUnavailable, Op: "AUTH " + mech,
		Detail: "authentication failed for " + quote(user), Err: ErrBadCredentials}
}

// malformed is the failure of a client message the server cannot parse.
func malformed(mech string, cause error, what string) error {
	return mailsec.Errorf(mailsec.Protocol, "AUTH "+mech, cause, "malformed %s %s", mech, what)
}

// exchangeOver is the failure of a Next call after the exchange ended.
func exchangeOver(mech string) error {
	return mailsec.Errorf(mailsec.Protocol, "AUTH "+mech, nil, "%s exchange already ended", mech)
}

// validName accepts user names that are UTF-8 without control characters,
// so that the identity is safe to log and to pass to the user store.
func validName(s string) bool {
	return s != "" && utf8.ValidString(s) &&
		!strings.ContainsFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f })
}

// plainServer is the server side of PLAIN (RFC 4616).
type plainServer struct {
	users    UserStore
	asked    bool
	over     bool
	identity string
}

func (s *plainServer) Identity() string { return s.identity }

// Next asks for the message with an empty challenge when the client sent
// no initial response (RFC 4616 section 2), then checks it.
func (s *plainServer) Next(response []byte) ([]byte, bool, error) {
	if s.over {
		return nil, false, exchangeOver(Plain)
	}
	if response == nil && !s.asked {
		s.asked = true
		return []byte{}, false, nil
	}
	s.over = true
	// message = [authzid] UTF8NUL authcid UTF8NUL passwd, each 1 to
	// 255 octets of UTF-8 without NUL (RFC 4616 section 2).
	fields := bytes.Split(response, []byte{0})
	if len(fields) != 3 {
		return nil, false, malformed(Plain, nil, "message")
	}
	for i, f := range fields {
		if len(f) > 255 || !utf8.Valid(f) || (i > 0 && len(f) == 0) {
			return nil, false, malformed(Plain, nil, "message")
		}
	}
	authzid, user, password := string(fields[0]), string(fields[1]), string(fields[2])
	if !validName(user) {
		return nil, false, malformed(Plain, nil, "user name")
	}
	// Acting as another user would need an authorization policy this
	// server does not have (RFC 4616 section 2, RFC 4422 section 3.4.1).
	if authzid != "" && authzid != user {
		return nil, false, badCredentials(Plain, user)
	}
	if !s.users.CheckPassword(user, password) {
		return nil, false, badCredentials(Plain, user)
	}
	s.identity = user
	return nil, true, nil
}

// loginServer is the server side of LOGIN (draft-murchison-sasl-login).
type loginServer struct {
	users    UserStore
	stage    int // 0 start, 1 user name asked, 2 password asked
	user     string
	over     bool
	identity string
}

func (s *loginServer) Identity() string { return s.identity }

// Next prompts with "Username:" and "Password:", the texts clients have
// seen since the draft; a client that sent the user name as initial
// response (as Outlook and many others do) goes straight to the password.
func (s *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch {
	case s.over:
		return nil, false, exchangeOver(Login)
	case s.stage == 0 && response == nil:
		s.stage = 1
		return []byte("Username:"), false, nil
	case s.stage <= 1:
		s.user = string(response)
		if !validName(s.user) {
			s.over = true
			return nil, false, malformed(Login, nil, "user name")
		}
		s.stage = 2
		return []byte("Password:"), false, nil
	default:
		s.over = true
		if !s.users.CheckPassword(s.user, string(response)) {
			return nil, false, badCredentials(Login, s.user)
		}
		s.identity = s.user
		return nil, true, nil
	}
}
