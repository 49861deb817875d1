// Package userdb is the users file of mailsec serve: one line per user with
// an argon2id password hash (RFC 9106) and SCRAM-SHA-256 stored credentials
// (RFC 5802 section 3, RFC 7677), so that no mechanism needs the password
// itself. A DB implements sasl.UserStore and the recipient lookup of smtpd.
//
// The file (<data>/users, mode 0600) is plain text:
//
//	# comment
//	alice $argon2id$v=19$m=65536,t=3,p=4$<salt>$<hash> scram-sha-256$4096$<salt>$<storedkey>$<serverkey>
//
// with unpadded standard base64 for the binary fields. The DB re-reads the
// file when its modification time changes, so "mailsec users add" takes
// effect in a running server without a restart.
package userdb

import (
	"crypto/subtle"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/sasl"
)

// Options tune a DB. The zero value is ready for use.
type Options struct {
	// Argon2 are the parameters of new password hashes; the zero value
	// means DefaultArgon2. Existing hashes keep the parameters they were
	// made with.
	Argon2 Argon2Params
	// SCRAMIterations is the PBKDF2 iteration count of new SCRAM
	// credentials; 0 means 4096, the minimum RFC 7677 section 4 allows.
	SCRAMIterations int
}

// user is one line of the file.
type user struct {
	hash  passwordHash
	scram sasl.StoredCredentials
}

// DB is a users file. It is safe for concurrent use.
type DB struct {
	path string
	opts Options
	// dummy is hashed against when the user does not exist, so that the
	// reply takes as long as for a wrong password (no enumeration by
	// timing).
	dummy passwordHash

	mu    sync.Mutex
	users map[string]*user
	mtime time.Time
	size  int64
}

// Open returns the DB stored at path. A missing file is an empty DB; it is
// created by the first Add.
func Open(path string, opts *Options) (*DB, error) {
	db := &DB{path: path, users: map[string]*user{}}
	if opts != nil {
		db.opts = *opts
	}
	if db.opts.Argon2 == (Argon2Params{}) {
		db.opts.Argon2 = DefaultArgon2
	}
	if db.opts.SCRAMIterations == 0 {
		db.opts.SCRAMIterations = 4096
	}
	var err error
	if db.dummy, err = newPasswordHash("mailsec-no-such-user", db.opts.Argon2); err != nil {
		return nil, err
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	if err := db.refresh(); err != nil {
		return nil, err
	}
	return db, nil
}

// Path returns the file the DB is stored in.
func (db *DB) Path() string { return db.path }

// nameRE is what a user name may be: it becomes a Maildir directory name
// and the local part of an address, so it is kept to a portable subset.
var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,63}$`)

// CanonicalName lower-cases name and checks that it is a valid user name.
func CanonicalName(name string) (string, error) {
	n := strings.ToLower(name)
	if !nameRE.MatchString(n) {
		return "", mailsec.Errorf(mailsec.Data, "users", nil,
			"invalid user name %q: use 1-64 of a-z 0-9 . _ - starting with a letter or digit", name)
	}
	return n, nil
}

// lookup returns the user, re-reading the file first when it changed.
func (db *DB) lookup(name string) *user {
	db.mu.Lock()
	defer db.mu.Unlock()
	// A read error keeps the last good copy: a half-edited file must not
	// lock everybody out.
	_ = db.refresh()
	return db.users[strings.ToLower(name)]
}

// Exists reports whether name is a user, i.e. has a mailbox.
func (db *DB) Exists(name string) bool { return db.lookup(name) != nil }

// List returns the user names, sorted.
func (db *DB) List() []string {
	db.mu.Lock()
	defer db.mu.Unlock()
	_ = db.refresh()
	names := make([]string, 0, len(db.users))
	for n := range db.users {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// CheckPassword reports whether password is user's. It spends the same
// argon2 time whether or not the user exists, and compares in constant time.
func (db *DB) CheckPassword(name, password string) bool {
	u := db.lookup(name)
	h := db.dummy
	if u != nil {
		h = u.hash
	}
	ok := h.verify(password)
	return ok && u != nil
}

// SCRAMSHA256 returns user's SCRAM-SHA-256 stored credentials.
func (db *DB) SCRAMSHA256(name string) (sasl.StoredCredentials, bool) {
	u := db.lookup(name)
	if u == nil {
		return sasl.StoredCredentials{}, false
	}
	return u.scram, true
}

// constantTimeEqual compares two secrets without leaking where they differ.
func constantTimeEqual(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }

// stat returns the file's identity for change detection.
func stat(path string) (time.Time, int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return time.Time{}, 0, err
	}
	return fi.ModTime(), fi.Size(), nil
}
