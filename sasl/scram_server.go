package sasl

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"

	"github.com/mailsec/mailsec"
	"github.com/xdg-go/scram"
)

// minIterations is the least PBKDF2 iteration count RFC 7677 section 4
// allows for SCRAM-SHA-256; scram clients refuse fewer.
const minIterations = 4096

// saltSize is 128 bits of salt, enough that no two users or two password
// changes share one.
const saltSize = 16

// StoredCredentials are what the server keeps of a SCRAM-SHA-256 password
// (RFC 5802 section 3): enough to check a client's proof and to prove
// itself, but not to log in as the user, so a stolen user store does not
// give away the passwords.
type StoredCredentials struct {
	Salt       []byte
	Iterations int
	StoredKey  []byte
	ServerKey  []byte
}

// NewStoredCredentials derives SCRAM-SHA-256 credentials from a password
// with a fresh random salt, for `users add`. The password is normalised
// with SASLprep as clients do (RFC 5802 section 5.1), so a password
// SASLprep rejects is refused here rather than becoming unusable later.
func NewStoredCredentials(password string, iterations int) (StoredCredentials, error) {
	if password == "" {
		return StoredCredentials{}, configError(SCRAMSHA256, "empty password")
	}
	if iterations < minIterations || iterations > maxIterations {
		return StoredCredentials{}, configError(SCRAMSHA256,
			"iteration count %d outside %d..%d (RFC 7677 section 4 sets the minimum; clients refuse more than the maximum)",
			iterations, minIterations, maxIterations)
	}
	salt := make([]byte, saltSize)
	rand.Read(salt) // crypto/rand.Read never fails (Go 1.24+).
	return deriveStoredCredentials(password, salt, iterations)
}

func deriveStoredCredentials(password string, salt []byte, iterations int) (StoredCredentials, error) {
	c, err := scram.SHA256.NewClient("", password, "")
	if err != nil {
		return StoredCredentials{}, mailsec.Errorf(mailsec.Config, "AUTH "+SCRAMSHA256, err, "password unusable for SCRAM")
	}
	sc, err := c.GetStoredCredentialsWithError(scram.KeyFactors{Salt: string(salt), Iters: iterations})
	if err != nil {
		return StoredCredentials{}, mailsec.Errorf(mailsec.Config, "AUTH "+SCRAMSHA256, err, "cannot derive SCRAM credentials")
	}
	return StoredCredentials{Salt: salt, Iterations: iterations, StoredKey: sc.StoredKey, ServerKey: sc.ServerKey}, nil
}

// decoyKey keys the decoy credentials of unknown users; it is random per
// process so that nobody can predict a decoy salt.
var decoyKey = func() []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}()

// decoyCredentials stand in for a user the store does not know: the
// exchange then runs to the proof check and fails like a wrong password,
// and the salt stays the same across attempts, so a client cannot tell
// unknown users from known ones as the "unknown-user" error of RFC 5802
// section 7 would let it.
func decoyCredentials(user string) scram.StoredCredentials {
	derive := func(label string) []byte {
		mac := hmac.New(sha256.New, decoyKey)
		mac.Write([]byte(label + "\x00" + user))
		return mac.Sum(nil)
	}
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(derive("salt")[:saltSize]), Iters: minIterations},
		StoredKey:  derive("stored"),
		ServerKey:  derive("server"),
	}
}

// scramServer is the server side of SCRAM-SHA-256 (RFC 5802, RFC 7677)
// without channel binding: the server does not offer -PLUS, so a client
// asking for binding ("p=") is refused and "y" is accepted (RFC 5802
// section 6).
type scramServer struct {
	users    UserStore
	conv     *scram.ServerConversation
	stage    int // 0 start, 1 first message asked, 2 proof awaited, 3 final sent
	over     bool
	user     string
	identity string
	// nonce replaces the random server nonce part when set: the hook the
	// tests use to replay the RFC 7677 example.
	nonce string
}

func (s *scramServer) Identity() string { return s.identity }

// lookup hands the library the user's stored credentials, or decoys.
func (s *scramServer) lookup(user string) (scram.StoredCredentials, error) {
	sc, ok := s.users.SCRAMSHA256(user)
	if !ok {
		return decoyCredentials(user), nil
	}
	return scram.StoredCredentials{
		KeyFactors: scram.KeyFactors{Salt: string(sc.Salt), Iters: sc.Iterations},
		StoredKey:  sc.StoredKey,
		ServerKey:  sc.ServerKey,
	}, nil
}

// Next runs the exchange of RFC 5802 section 3: client-first-message,
// server-first-message, client-final-message, server-final-message. The
// server-final-message goes out as a challenge and the exchange ends on
// the client's empty response, the way RFC 4422 section 4 has protocols
// without additional data on success (SMTP AUTH, POP3 AUTH) carry it.
func (s *scramServer) Next(response []byte) ([]byte, bool, error) {
	if s.over {
		return nil, false, exchangeOver(SCRAMSHA256)
	}
	switch s.stage {
	case 0, 1:
		if response == nil && s.stage == 0 {
			s.stage = 1
			return []byte{}, false, nil
		}
		return s.first(response)
	case 2:
		final, err := s.conv.Step(string(response))
		if err != nil {
			s.over = true
			if final == scram.ErrInvalidProof {
				return nil, false, badCredentials(SCRAMSHA256, s.user)
			}
			return nil, false, malformed(SCRAMSHA256, err, "client-final-message")
		}
		s.stage = 3
		return []byte(final), false, nil
	default:
		s.over = true
		if len(response) != 0 {
			return nil, false, malformed(SCRAMSHA256, nil, "response to the server-final-message")
		}
		s.identity = s.user
		return nil, true, nil
	}
}

// first answers the client-first-message with the server-first-message.
func (s *scramServer) first(response []byte) ([]byte, bool, error) {
	srv, err := scram.SHA256.NewServer(s.lookup)
	if err != nil {
		s.over = true
		return nil, false, mailsec.Errorf(mailsec.Config, "AUTH "+SCRAMSHA256, err, "cannot start SCRAM")
	}
	if s.nonce != "" {
		nonce := s.nonce
		srv.WithNonceGenerator(func() string { return nonce })
	}
	s.conv = srv.NewConversation()
	first, err := s.conv.Step(string(response))
	if err != nil {
		s.over = true
		return nil, false, malformed(SCRAMSHA256, err, "client-first-message")
	}
	s.user = s.conv.Username()
	if !validName(s.user) {
		s.over = true
		return nil, false, malformed(SCRAMSHA256, nil, "user name")
	}
	// As for PLAIN, acting as another user needs a policy this server
	// does not have (RFC 5802 section 5.1, a=).
	if authz := s.conv.AuthzID(); authz != "" && authz != s.user {
		s.over = true
		return nil, false, badCredentials(SCRAMSHA256, s.user)
	}
	s.stage = 2
	return []byte(first), false, nil
}
