package mailbox

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailsec/mailsec"
)

// orphanAge is how old a file in tmp/ must be before it is taken for the
// leftover of a crashed delivery and removed: the Maildir specification
// (cr.yp.to/proto/maildir.html) says 36 hours.
const orphanAge = 36 * time.Hour

// Maildir delivers into one Maildir directory in the steps of the Maildir
// specification: Stage reads the message (a large one straight into tmp/),
// Sync writes it under a unique name in tmp/ and makes it durable (the one
// disk flush per message), Commit renames it into new/. Readers never see
// a partial message.
//
// The unique name carries the message's origin: ",A=<account tag>" and
// ",U=<UIDL in unpadded base64url>" after the host part, the place where
// Maildir++ writers put ",S=<size>". A file in new/ or cur/ (where a mail
// reader moves it, adding ":2,FLAGS") is thus itself proof that the message
// was fetched, and Delivered reads that proof back after a crash. So the
// rename need not be flushed on its own: the renames of a whole download
// are made durable at once by Sync, before anything irreversible (a DELE
// on the server, the end of the run). A rename lost in a crash leaves the
// complete message in tmp/, and it is fetched again, so it never appears
// twice.
//
// Stage, Sync and Commit of different messages may run concurrently; that
// is what lets many flushes share one commit of the file system's journal.
type Maildir struct {
	dir  string
	host string
	pid  string
	bufs sync.Pool // *copyBuf, one per message staged and not yet synced
}

// copyBuf is what staging one message needs besides the file: the line-end
// converter's input buffer and the buffer a small message is held in (the
// copy buffer of a large one), reused across messages.
type copyBuf struct {
	u   *unixReader
	buf []byte
}

// Origin names the server message a delivery comes from: the account
// ("user@host") and the message's UIDL. An empty UID is a message without
// one (a server without UIDL); its file name then carries no proof.
type Origin struct {
	Account string
	UID     string
}

// OpenMaildir opens the Maildir at dir, creating dir and its tmp/, new/ and
// cur/ (mode 0700) when missing, and removes files left in tmp/ for longer
// than 36 hours, as the specification asks of every Maildir user.
func OpenMaildir(dir string) (*Maildir, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "maildir", err, "bad Maildir path %s", dir)
	}
	_, statErr := os.Stat(abs)
	for _, sub := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o700); err != nil {
			return nil, mailsec.Errorf(mailsec.Config, "maildir", err, "cannot create the Maildir %s", abs)
		}
	}
	if os.IsNotExist(statErr) {
		// A new Maildir's own entry must be durable before anything in it.
		if err := syncDir(filepath.Dir(abs)); err != nil {
			return nil, mailsec.Errorf(mailsec.Config, "maildir", err, "cannot fsync %s", filepath.Dir(abs))
		}
	}
	if err := removeOrphans(filepath.Join(abs, "tmp"), time.Now().Add(-orphanAge)); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	// The specification reserves "/" and ":" in names and encodes them so;
	// "," is encoded the same way because it starts the fields after the
	// host.
	host = strings.NewReplacer("/", `\057`, ":", `\072`, ",", `\054`).Replace(host)
	return &Maildir{dir: abs, host: host, pid: strconv.Itoa(os.Getpid())}, nil
}

// removeOrphans removes the files in tmp last modified before cutoff.
func removeOrphans(tmp string, cutoff time.Time) error {
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return mailsec.Errorf(mailsec.Config, "maildir", err, "cannot read %s", tmp)
	}
	for _, e := range ents {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() && info.ModTime().Before(cutoff) {
			os.Remove(filepath.Join(tmp, e.Name()))
		}
	}
	return nil
}

// accountTag is the short account mark in file names: 48 bits of the
// SHA-256 of the account, enough to tell apart the few accounts that feed
// one Maildir without putting an address into every file name.
func accountTag(account string) string {
	sum := sha256.Sum256([]byte(account))
	return base64.RawURLEncoding.EncodeToString(sum[:6])
}

// uniqueName makes a name in the modern form of the Maildir specification,
// "<sec>.M<usec>P<pid>R<random>.<host>": time, process and 64 random bits,
// unique without a counter shared between processes; then the origin
// fields. base64url has no "/", ":" or ",", so the fields need no quoting.
func (m *Maildir) uniqueName(o Origin) string {
	var rnd [8]byte
	rand.Read(rnd[:])
	now := time.Now()
	name := strconv.FormatInt(now.Unix(), 10) + ".M" + strconv.Itoa(now.Nanosecond()/1000) +
		"P" + m.pid + "R" + hex.EncodeToString(rnd[:]) + "." + m.host
	if o.UID != "" {
		name += ",A=" + accountTag(o.Account) + ",U=" + base64.RawURLEncoding.EncodeToString([]byte(o.UID))
	}
	return name
}

// originUID returns the UIDL a file name carries for the account tag, or "".
func originUID(name, tag string) string {
	name, _, _ = strings.Cut(name, ":") // the info part a reader adds in cur/
	fields := strings.Split(name, ",")
	var acct, uid string
	for _, f := range fields[1:] {
		switch {
		case strings.HasPrefix(f, "A="):
			acct = f[2:]
		case strings.HasPrefix(f, "U="):
			uid = f[2:]
		}
	}
	if acct != tag || uid == "" {
		return ""
	}
	b, err := base64.RawURLEncoding.DecodeString(uid)
	if err != nil || !validUID(string(b)) {
		return ""
	}
	return string(b)
}

// validUID is RFC 1939 section 7's unique-id, 1 to 70 octets in
// 0x21-0x7E, which the POP3 client checks every UIDL against: a name
// carrying anything else was not made by Stage.
func validUID(s string) bool {
	return len(s) > 0 && len(s) <= 70 && strings.IndexFunc(s, func(r rune) bool { return r <= ' ' || r > '~' }) < 0
}

// KeepsOrigin implements Mailbox: the origin is in the file name.
func (m *Maildir) KeepsOrigin() bool { return true }

// Delivered implements Mailbox: the UIDLs of account named by the files in
// new/ and cur/.
func (m *Maildir) Delivered(account string) ([]string, error) {
	tag := accountTag(account)
	var uids []string
	for _, sub := range []string{"new", "cur"} {
		dir := filepath.Join(m.dir, sub)
		ents, err := os.ReadDir(dir)
		if err != nil {
			return nil, mailsec.Errorf(mailsec.Config, "maildir", err, "cannot read %s", dir)
		}
		for _, e := range ents {
			if uid := originUID(e.Name(), tag); uid != "" {
				uids = append(uids, uid)
			}
		}
	}
	return uids, nil
}

// Staged is a message read and on its way to new/: written into tmp/, or,
// when it is small, still held in memory until Sync writes it.
type Staged struct {
	m      *Maildir
	name   string
	f      *os.File // a large message, written and open until Sync
	held   *copyBuf // a small message, in data (held.buf[:len(data)])
	data   []byte
	synced bool
	// Size is the octets read from the message reader (the wire size).
	Size int64
}

// heldMax is the largest message Stage keeps in memory instead of writing
// it at once. Creating a file (inode allocation) is the dearest step of a
// small message; holding it lets Sync, which runs concurrently with the
// next download, do that too. Memory stays bounded: each Staged in flight
// holds at most this much, whatever the message size.
const heldMax = 128 << 10

// Stage reads the message from r (wire form, CRLF) with LF line ends. A
// message of up to 128 KiB is held in memory; a larger one is written into
// tmp/ as it arrives. On error nothing remains.
func (m *Maildir) Stage(r io.Reader, o Origin) (*Staged, error) {
	cb, _ := m.bufs.Get().(*copyBuf)
	if cb == nil {
		cb = &copyBuf{u: newUnixReader(nil), buf: make([]byte, heldMax)}
	}
	cb.u.reset(r)
	s := &Staged{m: m, name: m.uniqueName(o)}
	n, err := io.ReadFull(cb.u, cb.buf)
	switch err {
	case io.EOF, io.ErrUnexpectedEOF:
		s.held, s.data, s.Size = cb, cb.buf[:n], cb.u.n
		cb.u.reset(nil)
		return s, nil
	case nil:
		err = s.stream(cb)
		s.Size = cb.u.n
	}
	cb.u.reset(nil)
	m.bufs.Put(cb)
	if err != nil {
		if mailsec.CodeOf(err) == 0 {
			err = mailsec.Errorf(mailsec.Config, "maildir", err, "cannot write into %s/tmp", m.dir)
		}
		return nil, err
	}
	return s, nil
}

// stream writes a message larger than heldMax into tmp/: the full buffer,
// then the rest as it arrives.
func (s *Staged) stream(cb *copyBuf) error {
	path := filepath.Join(s.m.dir, "tmp", s.name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err = f.Write(cb.buf); err == nil {
		// The plain Writer hides ReadFrom, so the copy goes through buf:
		// one write system call per buffer.
		_, err = io.CopyBuffer(struct{ io.Writer }{f}, cb.u, cb.buf)
	}
	if err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	s.f = f
	return nil
}

// Sync makes the staged content durable in tmp/ (writing it first when it
// was held in memory), with one fsync, and closes the file.
func (s *Staged) Sync() error {
	if s.synced {
		return nil
	}
	path := filepath.Join(s.m.dir, "tmp", s.name)
	if s.held != nil {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			s.f = f
			_, err = f.Write(s.data)
		}
		s.m.bufs.Put(s.held)
		s.held, s.data = nil, nil
		if err != nil {
			s.Abort()
			return mailsec.Errorf(mailsec.Config, "maildir", err, "cannot write %s", path)
		}
	}
	err := s.f.Sync()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	if err != nil {
		os.Remove(path)
		return mailsec.Errorf(mailsec.Config, "maildir", err, "cannot fsync %s", path)
	}
	s.synced = true
	return nil
}

// Commit syncs the message if Sync was not called, then renames it into
// new/. The rename is durable once the Maildir's Sync returns.
func (s *Staged) Commit() error {
	if err := s.Sync(); err != nil {
		return err
	}
	tmp := filepath.Join(s.m.dir, "tmp", s.name)
	if err := os.Rename(tmp, filepath.Join(s.m.dir, "new", s.name)); err != nil {
		os.Remove(tmp)
		return mailsec.Errorf(mailsec.Config, "maildir", err, "cannot move the message into new/")
	}
	return nil
}

// Abort drops a staged message that will not be committed.
func (s *Staged) Abort() {
	switch {
	case s.held != nil:
		s.m.bufs.Put(s.held)
		s.held, s.data = nil, nil
	case s.f != nil:
		s.f.Close()
		s.f = nil
		os.Remove(filepath.Join(s.m.dir, "tmp", s.name))
	case s.synced:
		os.Remove(filepath.Join(s.m.dir, "tmp", s.name))
	}
}

// Deliver implements Mailbox: Stage, Sync, Commit.
func (m *Maildir) Deliver(r io.Reader, o Origin) (int64, error) {
	s, err := m.Stage(r, o)
	if err != nil {
		return 0, err
	}
	return s.Size, s.Commit()
}

// Sync implements Mailbox: it makes every rename into new/ so far durable
// (fsync of new/).
func (m *Maildir) Sync() error {
	if err := syncDir(filepath.Join(m.dir, "new")); err != nil {
		return mailsec.Errorf(mailsec.Config, "maildir", err, "cannot fsync %s/new", m.dir)
	}
	return nil
}

// Path implements Mailbox.
func (m *Maildir) Path() string { return m.dir }

// Close implements Mailbox; a Maildir holds nothing open.
func (m *Maildir) Close() error { return nil }
