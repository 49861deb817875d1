package userdb

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/store"
)

// refresh re-reads the file if it changed since the last read. db.mu held.
func (db *DB) refresh() error {
	mtime, size, err := stat(db.path)
	if errors.Is(err, fs.ErrNotExist) {
		db.users, db.mtime, db.size = map[string]*user{}, mtime, 0
		return nil
	}
	if err != nil {
		return mailsec.Errorf(mailsec.Config, "users", err, "cannot read users file")
	}
	if mtime.Equal(db.mtime) && size == db.size {
		return nil
	}
	data, err := os.ReadFile(db.path)
	if err != nil {
		return mailsec.Errorf(mailsec.Config, "users", err, "cannot read users file")
	}
	users, err := parse(data)
	if err != nil {
		return err
	}
	db.users, db.mtime, db.size = users, mtime, size
	return nil
}

func parse(data []byte) (map[string]*user, error) {
	users := map[string]*user{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 {
			return nil, mailsec.Errorf(mailsec.Config, "users", nil, "line %d: want NAME ARGON2ID SCRAM", n)
		}
		h, err := parsePasswordHash(f[1])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		sc, err := parseSCRAM(f[2])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		users[f[0]] = &user{hash: h, scram: sc}
	}
	return users, sc.Err()
}

func formatSCRAM(c sasl.StoredCredentials) string {
	return "scram-sha-256$" + strconv.Itoa(c.Iterations) + "$" + b64.EncodeToString(c.Salt) + "$" +
		b64.EncodeToString(c.StoredKey) + "$" + b64.EncodeToString(c.ServerKey)
}

func parseSCRAM(s string) (sasl.StoredCredentials, error) {
	var c sasl.StoredCredentials
	f := strings.Split(s, "$")
	bad := mailsec.Errorf(mailsec.Config, "users", nil, "bad SCRAM-SHA-256 credentials")
	if len(f) != 5 || f[0] != "scram-sha-256" {
		return c, bad
	}
	var err error
	if c.Iterations, err = strconv.Atoi(f[1]); err != nil || c.Iterations < 1 {
		return c, bad
	}
	for i, dst := range []*[]byte{&c.Salt, &c.StoredKey, &c.ServerKey} {
		if *dst, err = b64.DecodeString(f[2+i]); err != nil {
			return c, bad
		}
	}
	return c, nil
}

// Add creates user name with password, or replaces the password of an
// existing user.
func (db *DB) Add(name, password string) error {
	n, err := CanonicalName(name)
	if err != nil {
		return err
	}
	if password == "" {
		return mailsec.Errorf(mailsec.Data, "users", nil, "empty password")
	}
	h, err := newPasswordHash(password, db.opts.Argon2)
	if err != nil {
		return err
	}
	sc, err := sasl.NewStoredCredentials(password, db.opts.SCRAMIterations)
	if err != nil {
		return err
	}
	return db.update(func(users map[string]*user) error {
		users[n] = &user{hash: h, scram: sc}
		return nil
	})
}

// Delete removes user name. Its Maildir is left alone.
func (db *DB) Delete(name string) error {
	n := strings.ToLower(name)
	return db.update(func(users map[string]*user) error {
		if users[n] == nil {
			return mailsec.Errorf(mailsec.Data, "users", nil, "no user %q", name)
		}
		delete(users, n)
		return nil
	})
}

// update applies change to the file under an exclusive flock(2) of
// <file>.lock, so that two "users add" running at once do not lose each
// other's change, and replaces the file atomically (write, fsync, rename,
// fsync directory) so a crash leaves the old or the new file, never half.
func (db *DB) update(change func(map[string]*user) error) error {
	if err := os.MkdirAll(filepath.Dir(db.path), 0o700); err != nil {
		return mailsec.Errorf(mailsec.Config, "users", err, "cannot create data directory")
	}
	lock, err := os.OpenFile(db.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return mailsec.Errorf(mailsec.Config, "users", err, "cannot open lock file")
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return mailsec.Errorf(mailsec.Config, "users", err, "cannot lock users file")
	}
	db.mu.Lock()
	defer db.mu.Unlock()
	db.mtime = db.mtime.Add(-1) // force a re-read: another process may have written
	if err := db.refresh(); err != nil {
		return err
	}
	users := make(map[string]*user, len(db.users)+1)
	for k, v := range db.users {
		users[k] = v
	}
	if err := change(users); err != nil {
		return err
	}
	if err := store.WriteFile(db.path, format(users)); err != nil {
		return mailsec.Errorf(mailsec.Config, "users", err, "cannot write users file")
	}
	db.users = users
	db.mtime, db.size, _ = stat(db.path)
	return nil
}

func format(users map[string]*user) []byte {
	names := make([]string, 0, len(users))
	for n := range users {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	b.WriteString("# mailsec users: NAME ARGON2ID-HASH SCRAM-SHA-256-CREDENTIALS. Edit with 'mailsec users'.\n")
	for _, n := range names {
		fmt.Fprintf(&b, "%s %s %s\n", n, users[n].hash, formatSCRAM(users[n].scram))
	}
	return b.Bytes()
}
