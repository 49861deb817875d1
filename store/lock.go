package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/mailsec/mailsec"
)

// ErrLocked is returned by Lock when another session holds the maildrop;
// a POP3 server answers it with -ERR [IN-USE] (RFC 2449 section 8.1.2).
var ErrLocked = errors.New("store: maildrop is locked by another session")

// Lock takes the exclusive lock on user's maildrop that RFC 1939 section 8
// asks a POP3 server to hold for a session, creating the Maildir if needed.
// It does not wait: a second session gets ErrLocked. The lock is an flock(2)
// on <maildir>/.lock, so it dies with the process and never goes stale.
// Deliveries do not take it: Maildir delivery needs no lock.
func (s *Store) Lock(user string) (unlock func() error, err error) {
	dir, err := s.maildir(user)
	if err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "store", err, "cannot open lock file")
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("store: lock: %w", err)
	}
	return f.Close, nil
}
