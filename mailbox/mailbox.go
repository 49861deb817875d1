// Package mailbox stores downloaded mail on the local disk without losing
// any: a Maildir writer (one fsync per message, the message's UIDL in its
// file name), an mbox writer (mboxrd quoting, locked, fsynced) and the UIDL
// state file that remembers which server messages were already fetched.
//
// The order that makes a download crash-safe: deliver, record the UIDL in
// the state (State.Add), make both durable (State.Sync), and only then
// delete on the server. A crash at any point loses nothing; a Maildir
// duplicates nothing (its file names prove what was delivered), an mbox at
// most the one message delivered but not yet recorded.
package mailbox

import (
	"bufio"
	"io"
)

// Mailbox is a local mailbox that takes one message at a time.
type Mailbox interface {
	// Deliver stores the message read from r, given in wire form (CRLF line
	// ends, as POP3 sends it), with the Unix line ends local mail readers
	// expect. It returns the octets read from r. On error nothing of the
	// message remains. On success the message's content is durable; its
	// place in the mailbox may need Sync.
	Deliver(r io.Reader, o Origin) (int64, error)
	// Sync makes every delivery so far durable.
	Sync() error
	// KeepsOrigin reports whether the mailbox stores each message's Origin
	// where Delivered can read it back. A State flushes each record of a
	// mailbox that does not.
	KeepsOrigin() bool
	// Delivered returns the UIDLs of account that the mailbox itself shows
	// were delivered.
	Delivered(account string) ([]string, error)
	// Path is the mailbox's location; the state file lives beside it.
	Path() string
	// Close releases the mailbox (its lock, for mbox).
	Close() error
}

// unixReader turns each CRLF of the wire form into LF as it reads. A bare
// CR is kept: it is content, not a line end. n counts the octets read from
// the underlying reader (the wire size).
type unixReader struct {
	br   *bufio.Reader
	n    int64
	pend []byte // converted octets not yet returned
	err  error
}

func newUnixReader(r io.Reader) *unixReader {
	return &unixReader{br: bufio.NewReaderSize(r, 64<<10)}
}

// reset makes u read r from the start, keeping its buffer.
func (u *unixReader) reset(r io.Reader) {
	u.br.Reset(r)
	u.n, u.pend, u.err = 0, nil, nil
}

// Read implements io.Reader.
func (u *unixReader) Read(p []byte) (int, error) {
	for len(u.pend) == 0 {
		if u.err != nil {
			return 0, u.err
		}
		u.fill()
	}
	n := copy(p, u.pend)
	u.pend = u.pend[n:]
	// Fill p with whatever else is already buffered, so that a caller
	// copying to a file makes one write per buffer, not one per line.
	for n < len(p) && len(u.pend) == 0 && u.err == nil && u.br.Buffered() > 0 {
		u.fill()
		k := copy(p[n:], u.pend)
		u.pend = u.pend[k:]
		n += k
	}
	return n, nil
}

// fill converts the next fragment (up to a newline or a full buffer) into
// pend.
func (u *unixReader) fill() {
	frag, err := u.br.ReadSlice('\n')
	u.n += int64(len(frag))
	switch {
	case err == nil && len(frag) >= 2 && frag[len(frag)-2] == '\r':
		frag[len(frag)-2] = '\n'
		frag = frag[:len(frag)-1]
	case err == bufio.ErrBufferFull && frag[len(frag)-1] == '\r':
		// The LF that makes this CR a line end may be next: decide
		// with the next fragment.
		u.br.UnreadByte()
		u.n--
		frag = frag[:len(frag)-1]
	}
	u.pend = frag
	if err != nil && err != bufio.ErrBufferFull {
		u.err = err
	}
}
