package mailbox

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"syscall"
	"time"

	"github.com/mailsec/mailsec"
)

// Mbox appends to one mbox file in the mboxrd format: each message starts
// with a "From " separator line, and every body line matching ">*From " gets
// one more ">" so that readers can undo the quoting exactly.
//
// The file is locked for as long as the Mbox is open, with both fcntl and
// flock locks, since mail programs on Linux use one or the other. A failed
// delivery truncates the file back to where it was, so no partial message
// stays. A crash in the middle of an append can leave the tail of one
// message; its server copy is kept (it was not recorded as fetched), so it
// is fetched again and nothing is lost.
type Mbox struct {
	path string
	f    *os.File
	now  func() time.Time
}

// OpenMbox opens (creating with mode 0600) and locks the mbox at path. It
// fails at once, with a temporary error, when another program holds the
// lock.
func OpenMbox(path string) (*Mbox, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "open mbox", err, "cannot open %s", path)
	}
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	err = syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk)
	if err == nil {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES) {
			return nil, mailsec.Errorf(mailsec.Timeout, "lock mbox", err, "%s is locked by another program; try again later", path)
		}
		return nil, mailsec.Errorf(mailsec.Config, "lock mbox", err, "cannot lock %s", path)
	}
	return &Mbox{path: path, f: f, now: time.Now}, nil
}

// Deliver implements Mailbox: the message is durable (fsynced) when it
// returns. The origin is not stored: an mbox keeps the message as it came.
func (m *Mbox) Deliver(r io.Reader, _ Origin) (n int64, err error) {
	start, err := m.f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, mailsec.Errorf(mailsec.Config, "mbox", err, "cannot seek %s", m.path)
	}
	defer func() {
		if err != nil {
			// Leave the file exactly as it was: no partial message.
			m.f.Truncate(start)
			m.f.Sync()
		}
	}()
	u := newUnixReader(r)
	br := bufio.NewReaderSize(u, 64<<10)
	w := bufio.NewWriterSize(m.f, 64<<10)
	if start > 0 {
		// A blank line separates messages (the body of the previous one
		// ends with a newline; the separator line needs one before it).
		if err = m.endsWithBlankLine(start); err != nil {
			return 0, err
		}
	}
	sender, err := envelopeSender(br)
	if err != nil {
		return u.n, err
	}
	w.WriteString("From " + sender + " " + m.now().UTC().Format(time.ANSIC) + "\n")
	last, err := quoteFrom(w, br)
	if err != nil {
		return u.n, err
	}
	if last != '\n' {
		w.WriteByte('\n')
	}
	w.WriteByte('\n')
	if err = w.Flush(); err != nil {
		return u.n, mailsec.Errorf(mailsec.Config, "mbox", err, "cannot write %s", m.path)
	}
	if err = m.f.Sync(); err != nil {
		return u.n, mailsec.Errorf(mailsec.Config, "mbox", err, "cannot fsync %s", m.path)
	}
	return u.n, nil
}

// endsWithBlankLine adds what is missing for the file to end in "\n\n",
// so a mailbox last written by a careless program still parses.
func (m *Mbox) endsWithBlankLine(size int64) error {
	var tail [2]byte
	k := int64(2)
	if size < 2 {
		k = size
	}
	if _, err := m.f.ReadAt(tail[:k], size-k); err != nil {
		return mailsec.Errorf(mailsec.Config, "mbox", err, "cannot read %s", m.path)
	}
	add := ""
	switch {
	case k == 2 && tail == [2]byte{'\n', '\n'}:
	case tail[k-1] == '\n':
		add = "\n"
	default:
		add = "\n\n"
	}
	if add != "" {
		if _, err := m.f.WriteString(add); err != nil {
			return mailsec.Errorf(mailsec.Config, "mbox", err, "cannot write %s", m.path)
		}
	}
	return nil
}

// envelopeSender takes the address of the first Return-Path header for the
// separator line, or MAILER-DAEMON, without consuming the message.
func envelopeSender(br *bufio.Reader) (string, error) {
	head, err := br.Peek(br.Size())
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return "", err
	}
	if i := bytes.Index(head, []byte("\n\n")); i >= 0 {
		head = head[:i+1]
	}
	for _, line := range bytes.Split(head, []byte("\n")) {
		name, val, ok := bytes.Cut(line, []byte(":"))
		if !ok || !bytes.EqualFold(bytes.TrimSpace(name), []byte("Return-Path")) {
			continue
		}
		addr := bytes.Trim(bytes.TrimSpace(val), "<>")
		if len(addr) > 0 && len(addr) < 256 && bytes.IndexFunc(addr, func(r rune) bool { return r <= ' ' || r > '~' }) < 0 {
			return string(addr), nil
		}
		break
	}
	return "MAILER-DAEMON", nil
}

// quoteFrom copies the message, adding ">" before every line matching
// ">*From " (mboxrd), and returns the last octet written.
func quoteFrom(w *bufio.Writer, br *bufio.Reader) (byte, error) {
	var last byte
	bol := true
	for {
		frag, err := br.ReadSlice('\n')
		if len(frag) > 0 {
			if bol && isFromLine(frag) {
				w.WriteByte('>')
			}
			w.Write(frag)
			last = frag[len(frag)-1]
			bol = last == '\n'
		}
		switch err {
		case nil, bufio.ErrBufferFull:
			continue
		case io.EOF:
			return last, nil
		}
		return last, err
	}
}

// isFromLine reports whether a line starts with ">*From ". frag is the
// start of the line; when a full buffer cut it short it is 64 KiB long, so
// only a line of that many ">" could be misjudged.
func isFromLine(frag []byte) bool {
	rest := bytes.TrimLeft(frag, ">")
	return bytes.HasPrefix(rest, []byte("From "))
}

// Sync implements Mailbox; Deliver already made each message durable.
func (m *Mbox) Sync() error { return nil }

// KeepsOrigin implements Mailbox: an mbox keeps the message as it came, so
// it cannot tell which server message a message came from.
func (m *Mbox) KeepsOrigin() bool { return false }

// Delivered implements Mailbox: nothing, see KeepsOrigin.
func (m *Mbox) Delivered(string) ([]string, error) { return nil, nil }

// Path implements Mailbox.
func (m *Mbox) Path() string { return m.path }

// Close implements Mailbox: it releases the locks with the file.
func (m *Mbox) Close() error { return m.f.Close() }
