package pop3d

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"os"

	"github.com/mailsec/mailsec/store"
)

// maildrop is a user's mailbox as one TRANSACTION state sees it: the
// messages present at login, numbered from 1 (RFC 1939 section 5: the
// numbering does not change during the session), their deletion marks, and
// the exclusive lock.
type maildrop struct {
	msgs    []store.Message
	uids    []string
	deleted []bool
	unlock  func() error
}

// openMaildrop locks user's maildrop and lists it. A second session on the
// same maildrop gets store.ErrLocked.
func openMaildrop(st *store.Store, user string) (*maildrop, error) {
	unlock, err := st.Lock(user)
	if err != nil {
		return nil, err
	}
	msgs, err := st.List(user)
	if err != nil {
		unlock()
		return nil, err
	}
	m := &maildrop{msgs: msgs, uids: make([]string, len(msgs)), deleted: make([]bool, len(msgs)), unlock: unlock}
	for i, msg := range msgs {
		m.uids[i] = uidOf(msg.Name)
	}
	return m, nil
}

// uidOf makes the unique-id of a message from its Maildir name, which
// survives moves from new/ to cur/ and flag changes, so the id is stable
// across sessions as RFC 1939 section 7 requires. A name that does not fit
// the uid syntax (1 to 70 characters from 0x21 to 0x7E) is replaced by a
// digest of it, stable too.
func uidOf(name string) string {
	valid := len(name) >= 1 && len(name) <= 70
	for i := 0; valid && i < len(name); i++ {
		valid = name[i] >= 0x21 && name[i] <= 0x7e
	}
	if valid {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// get returns message n (1-based) unless it is out of range or deleted
// (RFC 1939 section 5: deleted messages may not be referred to).
func (m *maildrop) get(arg string) (int, *reply) {
	n, r := msgNumber(arg, len(m.msgs))
	if r != nil {
		return 0, r
	}
	if m.deleted[n-1] {
		return 0, errDeletedMsg
	}
	return n, nil
}

// stat counts the messages not marked deleted and their octets.
func (m *maildrop) stat() (count int, size int64) {
	for i, msg := range m.msgs {
		if !m.deleted[i] {
			count++
			size += msg.Size
		}
	}
	return count, size
}

// commit removes the messages marked deleted (the UPDATE state, RFC 1939
// section 6) and reports how many could not be removed. A message already
// gone counts as removed.
func (m *maildrop) commit() (failed int) {
	for i, msg := range m.msgs {
		if m.deleted[i] {
			if err := os.Remove(msg.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				failed++
			}
		}
	}
	return failed
}

// release drops the lock; the maildrop must not be used afterwards.
func (m *maildrop) release() {
	if m.unlock != nil {
		m.unlock()
		m.unlock = nil
	}
}

// writeMessage copies a message to w as the body of a multi-line response
// (RFC 1939 section 3): every line CRLF-terminated (a bare LF in a file
// written by another program becomes CRLF), a line starting with "." gets
// another "." (byte-stuffing), and a missing final line end is added; the
// terminating ".\r\n" is the caller's. With bodyLines >= 0 only the header,
// the empty line and that many body lines are sent (TOP, section 7). It
// returns the octets read from r.
func writeMessage(w *bufio.Writer, r io.Reader, bodyLines int) (int64, error) {
	br := bufio.NewReaderSize(r, 32<<10)
	var read int64
	atStart, prevCR, inBody := true, false, false
	for bodyLines != 0 || !inBody {
		piece, err := br.ReadSlice('\n')
		read += int64(len(piece))
		if len(piece) > 0 {
			if atStart && piece[0] == '.' {
				w.WriteByte('.')
			}
			if piece[len(piece)-1] == '\n' {
				body := piece[:len(piece)-1]
				if len(body) == 0 && prevCR {
					// The CR ended the previous piece and is written.
					w.WriteByte('\n')
				} else {
					if len(body) > 0 && body[len(body)-1] == '\r' {
						body = body[:len(body)-1]
					}
					w.Write(body)
					w.WriteString("\r\n")
				}
				if inBody {
					bodyLines--
				} else if atStart && len(body) == 0 {
					inBody = true // the empty line ends the header
				}
				atStart, prevCR = true, false
			} else {
				w.Write(piece)
				atStart, prevCR = false, piece[len(piece)-1] == '\r'
			}
		}
		if errors.Is(err, io.EOF) {
			if !atStart {
				w.WriteString("\r\n")
			}
			return read, nil
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return read, err
		}
	}
	return read, nil
}
