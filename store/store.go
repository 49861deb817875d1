// Package store delivers mail into per-user Maildirs under one root
// (<data>/mail/<user>/) with the crash safety a mail server owes its
// clients: a message is written to tmp/, fsynced, renamed into new/ and the
// directory fsynced before Deliver returns, so a 250 reply never precedes a
// durable copy (RFC 5321 section 6.1) and nothing half-written ever appears
// in new/.
//
// The layout is the classic Maildir one (tmp/, new/, cur/), so readers such
// as a POP3 server, Dovecot or mutt can use the mailboxes; Lock gives such a
// reader the exclusive maildrop access RFC 1939 section 8 asks for.
package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/mailsec/mailsec"
)

// Store is a set of Maildirs, one per user, below Root. A Store is safe for
// concurrent use.
type Store struct {
	root  string
	names *namer
	// mkdirs remembers the Maildirs already created so that the common path
	// costs no mkdir system calls.
	mkdirs sync.Map
}

// New returns a Store rooted at root (usually <data>/mail), creating the
// directory with mode 0700 when it is missing.
func New(root string) (*Store, error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "store", err, "cannot create mail root %s", root)
	}
	return &Store{root: root, names: newNamer()}, nil
}

// Root returns the directory holding the per-user Maildirs.
func (s *Store) Root() string { return s.root }

// Path returns the Maildir of user. It fails for names that could escape
// the root ("..", "a/b", "") since user names come from the network.
func (s *Store) Path(user string) (string, error) {
	if user == "" || user == "." || user == ".." || strings.ContainsAny(user, "/\\\x00") {
		return "", mailsec.Errorf(mailsec.Data, "store", nil, "invalid mailbox name %q", user)
	}
	return filepath.Join(s.root, user), nil
}

// maildir returns user's Maildir, creating tmp/, new/ and cur/ if needed.
func (s *Store) maildir(user string) (string, error) {
	dir, err := s.Path(user)
	if err != nil {
		return "", err
	}
	if _, ok := s.mkdirs.Load(dir); ok {
		return dir, nil
	}
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return "", fmt.Errorf("store: create maildir: %w", err)
		}
	}
	if err := SyncDir(s.root); err != nil {
		return "", err
	}
	s.mkdirs.Store(dir, true)
	return dir, nil
}

// Deliver streams r into the new/ directory of every user's Maildir and
// returns nil only when every copy is durable. The message is written once:
// the first copy goes through tmp/, the others are hard links to it (the
// Maildir way of delivering one file to many boxes), falling back to a copy
// across file systems. Any error, including one returned by r (the SMTP
// layer uses that to reject a message after the fact), removes every copy
// made so far: delivery is all or nothing.
func (s *Store) Deliver(users []string, r io.Reader) (err error) {
	if len(users) == 0 {
		return mailsec.Errorf(mailsec.Data, "store", nil, "no recipients")
	}
	dirs := make([]string, len(users))
	for i, u := range users {
		if dirs[i], err = s.maildir(u); err != nil {
			return err
		}
	}
	tmp, err := writeTmp(dirs[0], s.names.next(), r)
	if err != nil {
		return err
	}
	var done []string // files already in a new/ directory
	defer func() {
		if err != nil {
			os.Remove(tmp)
			for _, p := range done {
				os.Remove(p)
			}
		}
	}()
	// The tmp file is renamed last so that it stays a valid link source.
	for _, dir := range dirs[1:] {
		dst := filepath.Join(dir, "new", s.names.next())
		if err = linkOrCopy(tmp, dst); err != nil {
			return err
		}
		done = append(done, dst)
	}
	first := filepath.Join(dirs[0], "new", filepath.Base(tmp))
	if err = os.Rename(tmp, first); err != nil {
		return fmt.Errorf("store: rename into new/: %w", err)
	}
	done = append(done, first)
	synced := map[string]bool{}
	for _, dir := range dirs {
		if synced[dir] {
			continue
		}
		synced[dir] = true
		// The rename or link is durable only once the directory is.
		if err = SyncDir(filepath.Join(dir, "new")); err != nil {
			return err
		}
	}
	return nil
}

// writeTmp copies r into a fresh file in dir/tmp and fsyncs it.
func writeTmp(dir, name string, r io.Reader) (string, error) {
	path := filepath.Join(dir, "tmp", name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("store: create: %w", err)
	}
	buf := bufPool.Get().(*[]byte)
	_, err = io.CopyBuffer(onlyWriter{f}, r, *buf)
	bufPool.Put(buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return "", err
	}
	return path, nil
}

// onlyWriter hides *os.File's ReadFrom so io.CopyBuffer uses our large
// buffer instead of falling back to small splice/sendfile-less copies.
type onlyWriter struct{ io.Writer }

// bufPool holds the copy buffers: 256 KiB makes one write system call per
// quarter megabyte of message.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// linkOrCopy makes dst a durable copy of src, by hard link when possible.
func linkOrCopy(src, dst string) error {
	err := os.Link(src, dst)
	if err == nil {
		return nil
	}
	var le *os.LinkError
	if !errors.As(err, &le) {
		return err
	}
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	tmp, err := writeTmp(filepath.Dir(filepath.Dir(dst)), filepath.Base(dst), f)
	if err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// SyncDir fsyncs a directory so that the entries created, renamed or
// linked in it survive a crash; the outbound queue's files need it too.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("store: fsync %s: %w", dir, err)
	}
	return nil
}
