package mailbox

import (
	"bufio"
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/mailsec/mailsec"
)

// stateHeader is the first line of a state file, so a future format can be
// told apart.
const stateHeader = "mailsec-uidl 1"

// syncMark is the journal line written, and flushed, each time the records
// before it were made durable together with their messages. No record
// starts with "#": the account in it is URL-escaped.
const syncMark = "#synced"

// State is the UIDL state file of a mailbox: which messages of which
// account were already fetched into it. It lives beside the mailbox
// ("<mailbox>.uidl") so that one mailbox can be fed from several accounts
// and moving the mailbox moves its state. It is the record of what was
// fetched: a message the user deletes from the mailbox is not fetched
// again.
//
// The state file is only ever replaced whole: written to a temporary file,
// fsynced, renamed over the old one, directory fsynced, so a crash leaves
// the old state or the new one, never a mix. During a run each fetched
// message is recorded by appending one line to a journal beside it
// ("<state>.journal"), which exists from OpenState to Close: finding it on
// open means the last run did not finish.
//
// For a Maildir the journal is not flushed per message: Sync flushes new/
// and then the journal once, followed by a mark line. After a crash the
// records before the last mark count (their messages were durable in new/
// when it was written); the ones after it may name a message whose rename
// was lost, so they are dropped, and the UIDLs in the names of the files in
// new/ and cur/ stand in for them. For an mbox, which has no such names,
// every record is flushed as it is appended, after its message was; a
// crash in the middle of an append leaves a last line without its newline,
// which loading ignores, so at most that one message is fetched again.
//
// A lock (flock on "<state>.lock", never removed, so it cannot go stale or
// be raced by its own removal) is held from OpenState to Close: a second
// fetch into the same mailbox fails at once with a Timeout error (a
// temporary failure) instead of racing the first.
//
// Both files hold one "account uid" line per fetched message, the account
// URL-escaped; lines of other accounts are kept untouched. A State is not
// safe for concurrent use.
type State struct {
	path    string
	owner   string // the account as given to OpenState
	account string // URL-escaped
	mb      Mailbox
	named   bool     // the mailbox's file names prove deliveries
	lock    *os.File // holds the flock; nil once closed
	seen    map[string]bool
	order   []string // this account's UIDs in the order they were added
	others  []string // lines of other accounts, verbatim
	journal *os.File
	dirty   bool // the state file lacks records
	pending bool // records appended since the last Sync
}

// StatePath returns the state file of the mailbox at mailboxPath.
func StatePath(mailboxPath string) string {
	return strings.TrimRight(mailboxPath, string(filepath.Separator)) + ".uidl"
}

// OpenState locks and reads the state of mb for account ("user@host"); a
// missing file is an empty state. A journal left by a run that did not
// finish is recovered and folded into the state file first, so new
// records never follow a line a crash may have cut.
func OpenState(mb Mailbox, account string) (*State, error) {
	path := StatePath(mb.Path())
	s := &State{path: path, owner: account, account: url.QueryEscape(account), mb: mb, named: mb.KeepsOrigin(), seen: map[string]bool{}}
	if err := s.takeLock(); err != nil {
		return nil, err
	}
	err := s.open(account)
	if err != nil {
		s.release()
		return nil, err
	}
	return s, nil
}

func (s *State) open(account string) error {
	if err := s.load(s.path, true); err != nil {
		return err
	}
	jpath := journalPath(s.path)
	_, err := os.Stat(jpath)
	if err == nil {
		if err := s.load(jpath, false); err != nil {
			return err
		}
		// The last run did not finish: what the file names prove was
		// delivered counts as fetched, whatever its journal lost.
		uids, derr := s.mb.Delivered(account)
		if derr != nil {
			return derr
		}
		for _, u := range uids {
			if s.record(u) {
				s.dirty = true
			}
		}
		if s.dirty {
			if err := s.save(); err != nil {
				return err
			}
			s.dirty = false
		}
		// Emptied and flushed before the first new record, so the old
		// lines and a possibly cut one cannot come back.
		if s.journal, err = os.OpenFile(jpath, os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o600); err == nil {
			err = s.journal.Sync()
		}
	} else if os.IsNotExist(err) {
		if s.journal, err = os.OpenFile(jpath, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600); err == nil {
			// The journal marks a run in progress: its entry must be
			// durable before any message of the run is.
			err = syncDir(filepath.Dir(s.path))
		}
	}
	if err != nil {
		return mailsec.Errorf(mailsec.Config, "state", err, "cannot open the journal %s", jpath)
	}
	return nil
}

// takeLock takes the flock on the lock file beside the state, without
// waiting.
func (s *State) takeLock() error {
	f, err := os.OpenFile(s.path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return mailsec.Errorf(mailsec.Config, "state", err, "cannot open the lock file beside %s", s.path)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return mailsec.Errorf(mailsec.Timeout, "lock state", err,
				"another fetch is writing into %s (lock %s held); try again later", s.mb.Path(), f.Name())
		}
		return mailsec.Errorf(mailsec.Config, "lock state", err, "cannot lock %s", f.Name())
	}
	s.lock = f
	return nil
}

// release closes the journal and drops the lock.
func (s *State) release() {
	if s.journal != nil {
		s.journal.Close()
		s.journal = nil
	}
	if s.lock != nil {
		s.lock.Close()
		s.lock = nil
	}
}

func journalPath(state string) string { return state + ".journal" }

// load merges one file's records. Only complete lines count: a journal's
// last line may have been cut by a crash. Of a Maildir's journal only the
// lines before the last sync mark count.
func (s *State) load(path string, isState bool) error {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return mailsec.Errorf(mailsec.Config, "state", err, "cannot read %s", path)
	}
	text := string(b)
	if !isState && s.named {
		// Only what the last mark vouches for; i indexes the text after
		// the newline put before it, so text[:i] ends before the mark.
		i := strings.LastIndex("\n"+text, "\n"+syncMark+"\n")
		text = text[:max(i, 0)]
	}
	lines := strings.SplitAfter(text, "\n")
	for n, line := range lines {
		if !strings.HasSuffix(line, "\n") {
			if isState && line != "" {
				return mailsec.Errorf(mailsec.Config, "state", nil, "%s: last line is incomplete", path)
			}
			break
		}
		line = strings.TrimSuffix(line, "\n")
		if n == 0 && isState {
			if line != stateHeader {
				return mailsec.Errorf(mailsec.Config, "state", nil, "%s is not a mailsec UIDL state file", path)
			}
			continue
		}
		if !isState && line == syncMark {
			continue
		}
		acct, uid, ok := strings.Cut(line, " ")
		if !ok || uid == "" || strings.Contains(uid, " ") {
			return mailsec.Errorf(mailsec.Config, "state", nil, "%s: malformed line %d", path, n+1)
		}
		if acct != s.account {
			// Another account's lines stay as they are; a journal's are
			// folded into the state file like this account's.
			if isState || !slices.Contains(s.others, line) {
				s.others = append(s.others, line)
				s.dirty = s.dirty || !isState
			}
		} else if s.record(uid) && !isState {
			s.dirty = true
		}
	}
	return nil
}

// record notes uid in memory and reports whether it is new.
func (s *State) record(uid string) bool {
	if s.seen[uid] {
		return false
	}
	s.seen[uid] = true
	s.order = append(s.order, uid)
	return true
}

// Account returns the account ("user@host") the state records.
func (s *State) Account() string { return s.owner }

// Mailbox returns the mailbox the state belongs to.
func (s *State) Mailbox() Mailbox { return s.mb }

// Seen reports whether uid was recorded for the account.
func (s *State) Seen(uid string) bool { return s.seen[uid] }

// Len returns how many UIDs the account has recorded.
func (s *State) Len() int { return len(s.order) }

// Add records uid, delivered to the mailbox: one line appended to the
// journal, flushed at once only for a mailbox without names (mbox); a
// Maildir's records become durable with Sync.
func (s *State) Add(uid string) error {
	if s.seen[uid] {
		return nil
	}
	if s.lock == nil {
		return mailsec.Errorf(mailsec.Config, "state", nil, "%s is closed", s.path)
	}
	if _, err := s.journal.WriteString(s.account + " " + uid + "\n"); err != nil {
		return mailsec.Errorf(mailsec.Config, "state", err, "cannot append to %s", s.journal.Name())
	}
	if !s.named {
		if err := s.journal.Sync(); err != nil {
			return mailsec.Errorf(mailsec.Config, "state", err, "cannot fsync %s", s.journal.Name())
		}
	}
	s.record(uid)
	s.dirty = true
	s.pending = s.named
	return nil
}

// Sync makes every delivery and record so far durable: the mailbox first
// (its renames), then the journal, so that no durable record ever names a
// message whose place in the mailbox could still be lost. Call it before
// anything irreversible, like a DELE.
func (s *State) Sync() error {
	if !s.pending {
		return nil
	}
	if err := s.mb.Sync(); err != nil {
		return err
	}
	if _, err := s.journal.WriteString(syncMark + "\n"); err != nil {
		return mailsec.Errorf(mailsec.Config, "state", err, "cannot append to %s", s.journal.Name())
	}
	if err := s.journal.Sync(); err != nil {
		return mailsec.Errorf(mailsec.Config, "state", err, "cannot fsync %s", s.journal.Name())
	}
	s.pending = false
	return nil
}

// Close syncs, folds the journal into the state file (when it holds
// anything new), removes the journal and releases the lock, in that order,
// so a crash in between only leaves records twice, which loading merges.
// Closing a closed State does nothing.
func (s *State) Close() error {
	if s.lock == nil {
		return nil
	}
	defer s.release()
	if err := s.Sync(); err != nil {
		return err
	}
	if s.dirty {
		if err := s.save(); err != nil {
			return err
		}
		s.dirty = false
	}
	if err := os.Remove(journalPath(s.path)); err != nil {
		return mailsec.Errorf(mailsec.Config, "state", err, "cannot remove %s", journalPath(s.path))
	}
	return nil
}

// Retain forgets the account's UIDs that keep does not contain (messages
// gone from the server), so the file does not grow forever, and closes the
// state as Close does.
func (s *State) Retain(keep func(uid string) bool) error {
	kept := s.order[:0]
	for _, u := range s.order {
		if keep(u) {
			kept = append(kept, u)
		} else {
			delete(s.seen, u)
		}
	}
	if len(kept) != len(s.order) {
		s.dirty = true
	}
	s.order = kept
	return s.Close()
}

// save writes the state to a temporary file beside the target, fsyncs it,
// renames it into place and fsyncs the directory.
func (s *State) save() error {
	dir := filepath.Dir(s.path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(s.path)+".tmp*")
	if err != nil {
		return mailsec.Errorf(mailsec.Config, "state", err, "cannot write the state beside %s", s.path)
	}
	tmp := f.Name()
	w := bufio.NewWriter(f)
	w.WriteString(stateHeader + "\n")
	for _, l := range s.others {
		w.WriteString(l + "\n")
	}
	for _, u := range s.order {
		w.WriteString(s.account + " " + u + "\n")
	}
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return mailsec.Errorf(mailsec.Config, "state", err, "cannot save %s", s.path)
	}
	return nil
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
