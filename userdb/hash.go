package userdb

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"

	"github.com/mailsec/mailsec"
)

// Argon2Params are argon2id's cost parameters (RFC 9106 section 3.1).
type Argon2Params struct {
	Time    uint32 // passes over memory
	Memory  uint32 // KiB
	Threads uint8  // lanes
}

// DefaultArgon2 is RFC 9106 section 4's second recommended option (64 MiB,
// 3 passes, 4 lanes), for machines where 2 GiB per login is too much.
var DefaultArgon2 = Argon2Params{Time: 3, Memory: 64 << 10, Threads: 4}

const (
	saltLen = 16 // RFC 9106 section 3.1: 128-bit salt
	keyLen  = 32 // 256-bit tag
)

// passwordHash is a parsed "$argon2id$v=19$m=..,t=..,p=..$salt$hash" string,
// the PHC format libargon2 and Dovecot's ARGON2ID scheme use.
type passwordHash struct {
	p    Argon2Params
	salt []byte
	key  []byte
}

var b64 = base64.RawStdEncoding

func newPasswordHash(password string, p Argon2Params) (passwordHash, error) {
	salt := make([]byte, saltLen)
	if _, err := rand.Read(salt); err != nil {
		return passwordHash{}, err
	}
	return passwordHash{p: p, salt: salt, key: argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, keyLen)}, nil
}

// hashing bounds the password verifications running at once. Each takes
// the hash's memory parameter (64 MiB by default) for its duration, and
// AUTH is open to anyone who completes a TLS handshake: without a bound, a
// few hundred concurrent guesses would take gigabytes and get the server
// killed. Beyond the bound a login waits its turn, which also keeps the
// CPU for the sessions that have work. Argon2 runs its lanes in parallel,
// so more verifications at once than cores gain nothing.
var hashing = make(chan struct{}, max(1, min(runtime.GOMAXPROCS(0), 4)))

func (h passwordHash) verify(password string) bool {
	hashing <- struct{}{}
	defer func() { <-hashing }()
	k := argon2.IDKey([]byte(password), h.salt, h.p.Time, h.p.Memory, h.p.Threads, uint32(len(h.key)))
	return constantTimeEqual(k, h.key)
}

// String renders the PHC string stored in the users file.
func (h passwordHash) String() string {
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.p.Memory, h.p.Time, h.p.Threads, b64.EncodeToString(h.salt), b64.EncodeToString(h.key))
}

func parsePasswordHash(s string) (passwordHash, error) {
	var h passwordHash
	f := strings.Split(s, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" || f[2] != "v="+strconv.Itoa(argon2.Version) {
		return h, mailsec.Errorf(mailsec.Config, "users", nil, "not an argon2id v=19 hash")
	}
	if _, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &h.p.Memory, &h.p.Time, &h.p.Threads); err != nil {
		return h, mailsec.Errorf(mailsec.Config, "users", err, "bad argon2id parameters")
	}
	var err error
	if h.salt, err = b64.DecodeString(f[4]); err != nil {
		return h, mailsec.Errorf(mailsec.Config, "users", err, "bad argon2id salt")
	}
	if h.key, err = b64.DecodeString(f[5]); err != nil || len(h.key) == 0 {
		return h, mailsec.Errorf(mailsec.Config, "users", err, "bad argon2id hash")
	}
	// Refuse absurd costs a tampered file could use to stall the server.
	if h.p.Time == 0 || h.p.Threads == 0 || h.p.Memory < 8*uint32(h.p.Threads) || h.p.Memory > 4<<20 || h.p.Time > 100 {
		return h, mailsec.Errorf(mailsec.Config, "users", nil, "argon2id parameters out of range")
	}
	return h, nil
}
