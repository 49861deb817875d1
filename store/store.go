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

// Deliver streams r into the new/ directory of every user's Maildir, as
// it is, and returns nil only when every copy is durable. The message is
// written once: the first copy goes through tmp/, the others are hard
// links to it (the Maildir way of delivering one file to many boxes),
// falling back to a copy across file systems. Any error, including one
// returned by r (the SMTP layer uses that to reject a message after the
// fact), removes every copy made so far: delivery is all or nothing.
func (s *Store) Deliver(users []string, r io.Reader) error {
	copies := make([]copySpec, len(users))
	for i, u := range users {
		copies[i].user = u
	}
	return s.deliver(copies, r)
}

// Delivery is the SMTP envelope of a final delivery, which DeliverMail
// records in each copy.
type Delivery struct {
	// From is the reverse path, "" for the null sender <>.
	From string
	// To are the mailboxes, each once.
	To []Recipient
}

// Recipient is one mailbox of a Delivery.
type Recipient struct {
	// Mailbox is the user whose Maildir gets the copy.
	Mailbox string
	// Addr is the recipient address the mailbox was reached by, as
	// Delivered-To names it (user@domain).
	Addr string
}

// LocalRecipient is the Recipient for mailbox, reached by addr: the
// mailbox at addr's domain, both in lower case, since local parts are
// matched to mailboxes without regard to case.
func LocalRecipient(mailbox, addr string) Recipient {
	domain := ""
	if at := strings.LastIndexByte(addr, '@'); at >= 0 {
		domain = "@" + strings.ToLower(addr[at+1:])
	}
	return Recipient{Mailbox: mailbox, Addr: mailbox + domain}
}

// DeliverMail is the final delivery of a message from SMTP into local
// mailboxes: like Deliver, all or nothing and durable before it returns,
// but each copy begins with "Return-Path: <From>", which RFC 5321 section
// 4.4 requires the final delivery to add, and "Delivered-To: Addr", as
// Postfix's local delivery adds (mail loops show up in it, and a reader
// sees which of its addresses a message came to). Since the copies differ
// in their first lines, each mailbox gets its own file: the message is
// streamed into the first and copied from it into the others.
func (s *Store) DeliverMail(d Delivery, r io.Reader) error {
	if !headerSafe(d.From) {
		return mailsec.Errorf(mailsec.Data, "store", nil, "invalid reverse path %q", d.From)
	}
	ret := "Return-Path: <" + d.From + ">\r\n"
	copies := make([]copySpec, len(d.To))
	for i, rc := range d.To {
		if !headerSafe(rc.Addr) {
			return mailsec.Errorf(mailsec.Data, "store", nil, "invalid recipient %q", rc.Addr)
		}
		copies[i] = copySpec{user: rc.Mailbox, prefix: ret + "Delivered-To: " + rc.Addr + "\r\n"}
	}
	return s.deliver(copies, r)
}

// headerSafe reports whether an address can go into a header field: no
// control characters, which would end the field or the header section.
func headerSafe(addr string) bool {
	for i := 0; i < len(addr); i++ {
		if addr[i] < ' ' || addr[i] == 0x7f {
			return false
		}
	}
	return true
}

// copySpec is one copy of a delivery: the user and the lines the copy
// begins with.
type copySpec struct {
	user, prefix string
}

// deliver writes r, each copy behind its prefix, and makes every copy
// durable; copies with the first one's prefix are hard links to it.
func (s *Store) deliver(copies []copySpec, r io.Reader) (err error) {
	if len(copies) == 0 {
		return mailsec.Errorf(mailsec.Data, "store", nil, "no recipients")
	}
	dirs := make([]string, len(copies))
	for i, c := range copies {
		if dirs[i], err = s.maildir(c.user); err != nil {
			return err
		}
	}
	first := copies[0].prefix
	tmp, err := writeTmp(dirs[0], s.names.next(), first, r)
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
	for i, c := range copies[1:] {
		dst := filepath.Join(dirs[i+1], "new", s.names.next())
		if c.prefix == first {
			err = linkOrCopy(tmp, dst)
		} else {
			err = copyFrom(tmp, int64(len(first)), c.prefix, dst)
		}
		if err != nil {
			return err
		}
		done = append(done, dst)
	}
	firstNew := filepath.Join(dirs[0], "new", filepath.Base(tmp))
	if err = os.Rename(tmp, firstNew); err != nil {
		return fmt.Errorf("store: rename into new/: %w", err)
	}
	done = append(done, firstNew)
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

// writeTmp writes prefix and then r into a fresh file in dir/tmp and
// fsyncs it.
func writeTmp(dir, name, prefix string, r io.Reader) (string, error) {
	path := filepath.Join(dir, "tmp", name)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", fmt.Errorf("store: create: %w", err)
	}
	if prefix != "" {
		_, err = io.WriteString(f, prefix)
	}
	if err == nil {
		buf := bufPool.Get().(*[]byte)
		_, err = io.CopyBuffer(onlyWriter{f}, r, *buf)
		bufPool.Put(buf)
	}
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
	return copyFrom(src, 0, "", dst)
}

// copyFrom makes dst a durable copy of src from offset skip on, behind
// prefix, through a tmp/ file of dst's Maildir.
func copyFrom(src string, skip int64, prefix, dst string) error {
	f, err := os.Open(src)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(skip, io.SeekStart); err != nil {
		return err
	}
	tmp, err := writeTmp(filepath.Dir(filepath.Dir(dst)), filepath.Base(dst), prefix, f)
	if err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}

// WriteFile replaces path with data durably: a temporary file (mode 0600)
// in the same directory is written and fsynced, renamed over path, and the
// directory fsynced, so that a crash leaves the old contents or the new,
// never an empty or partial file. The users file, the MTA-STS cache and
// the TLS report counts are kept this way.
func WriteFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return SyncDir(dir)
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
