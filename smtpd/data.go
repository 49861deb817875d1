package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"time"
)

// maxTextLine is RFC 5321 section 4.5.3.1.6's limit on a line of message
// text: 1000 octets with the CRLF.
const maxTextLine = 1000

// dataReader reads a message sent with DATA (RFC 5321 section 4.1.1.4):
// it removes the dot-stuffing (section 4.5.2) and stops at the end-of-data
// marker, which is only ever CRLF "." CRLF. A "." line after a bare LF, or
// ".\n", does not end the data: that difference between servers is what
// SMTP smuggling (CVE-2023-51764 and kin) exploits, and here the message
// with a bare LF or CR is refused whole instead (section 2.3.8). So is one
// with a NUL: no message may hold one (RFC 5322 section 2.1; RFC 2045
// section 2.8 for 8BITMIME), and a receiver that drops NULs would see
// CRLF NUL "." CRLF as the end of the data.
//
// A message that breaks a rule (bare CR/LF, line over 1000 octets, more than
// the size limit) is read to its end all the same, so the session stays in
// step with the client, but no more of it is handed out: Read then returns
// the refusal (a *reply) instead of io.EOF, which makes the Backend discard
// what it stored.
//
// The reader works straight out of the bufio.Reader's buffer: runs of
// ordinary lines (see run) are checked in place and copied to the caller
// in one piece; any other line goes through next, a line at a time.
type dataReader struct {
	r   *bufio.Reader
	max int64 // size limit, octets after unstuffing
	n   int64 // octets so far

	bol     bool   // the next octet starts a line (the last line ended in CRLF)
	prevCR  bool   // the last piece ended in CR; its LF may start the next
	lineLen int    // octets of the current line so far
	pending []byte // unstuffed octets not yet returned; points into r's buffer

	refusal *reply    // the first rule broken, if any
	done    bool      // the end-of-data marker was read
	end     time.Time // when it was read
	ioErr   error     // the connection failed; the session cannot go on
}

func newDataReader(r *bufio.Reader, max int64) *dataReader {
	return &dataReader{r: r, max: max, bol: true}
}

// Read implements io.Reader.
func (d *dataReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(d.pending) > 0 {
			c := copy(p[n:], d.pending)
			d.pending = d.pending[c:]
			n += c
			continue
		}
		if d.done || d.ioErr != nil {
			break
		}
		if k := d.run(p[n:]); k > 0 {
			n += k
			continue
		}
		d.next()
	}
	switch {
	case n > 0:
		return n, nil
	case d.ioErr != nil:
		return 0, d.ioErr
	case d.refusal != nil:
		return 0, d.refusal
	}
	return 0, io.EOF
}

// run copies into p the longest run of whole lines at the start of what
// the reader has buffered that need none of next's care: each starts a
// line, does not start with "." (no unstuffing, not the end marker), ends
// in CRLF with no other CR or LF in it, is at most maxTextLine octets, and
// all of them stay within the size limit. It returns how many octets it
// took; 0 leaves the next line to next, which refuses or unstuffs it.
// Taking such lines in bulk gives exactly what next would give line by
// line.
func (d *dataReader) run(p []byte) int {
	if !d.bol || d.prevCR || d.refusal != nil || d.r.Buffered() == 0 {
		return 0
	}
	buf, _ := d.r.Peek(min(d.r.Buffered(), len(p)))
	pos, lines := 0, 0
	for pos < len(buf) && buf[pos] != '.' {
		i := bytes.IndexByte(buf[pos:], '\n')
		if i < 1 || i+1 > maxTextLine || buf[pos+i-1] != '\r' {
			break
		}
		pos += i + 1
		lines++
	}
	// One CR per line, the one before its LF: no bare CR anywhere; and no
	// NUL, which next refuses.
	if pos == 0 || d.n+int64(pos) > d.max || bytes.Count(buf[:pos], []byte{'\r'}) != lines ||
		bytes.IndexByte(buf[:pos], 0) >= 0 {
		return 0
	}
	copy(p, buf[:pos])
	d.r.Discard(pos)
	d.n += int64(pos)
	return pos
}

// drain reads to the end of the data, discarding it, for when the Backend
// stopped reading early.
func (d *dataReader) drain() {
	d.pending = nil
	for !d.done && d.ioErr == nil {
		d.next()
		d.pending = nil
	}
}

// refuse records the first broken rule and stops handing out data.
func (d *dataReader) refuse(r *reply) {
	if d.refusal == nil {
		d.refusal = r
	}
	d.pending = nil
}

// next consumes one line, or one buffer-full piece of a longer one.
func (d *dataReader) next() {
	piece, err := d.r.ReadSlice('\n')
	whole := err == nil
	if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		d.ioErr = err
		return
	}
	// The end marker: the line "." CRLF right after a CRLF.
	if d.bol && len(piece) == 3 && piece[0] == '.' && piece[1] == '\r' && piece[2] == '\n' {
		d.done, d.end = true, time.Now()
		return
	}
	startBOL, prevCR := d.bol, d.prevCR
	d.bol, d.prevCR = false, false
	d.lineLen += len(piece)
	if startBOL && piece[0] == '.' {
		// RFC 5321 section 4.5.3.1.6 does not count the dot doubled for
		// transparency.
		d.lineLen--
	}

	// Every CR must be followed by LF and every LF preceded by CR. ReadSlice
	// returns LF only as the last octet, so the one CR allowed is the one
	// before it, or the last octet of a piece without LF (its LF comes next).
	last := len(piece) - 1
	allowedCR := last
	if whole {
		allowedCR = last - 1
	}
	if prevCR && piece[0] != '\n' {
		d.refuse(errBareLF)
	}
	if i := bytes.IndexByte(piece, '\r'); i >= 0 && i != allowedCR {
		d.refuse(errBareLF)
	}
	if bytes.IndexByte(piece, 0) >= 0 {
		d.refuse(errNUL)
	}
	if whole {
		crlf := last >= 1 && piece[last-1] == '\r' || last == 0 && prevCR
		if !crlf {
			d.refuse(errBareLF)
		}
		d.bol = crlf // a bare LF never starts a line that could end the data
		if d.lineLen > maxTextLine {
			d.refuse(errLongTextLine)
		}
		d.lineLen = 0
	} else {
		d.prevCR = piece[last] == '\r'
		if d.lineLen > maxTextLine {
			d.refuse(errLongTextLine)
		}
	}
	if startBOL && piece[0] == '.' {
		piece = piece[1:] // dot-unstuffing, RFC 5321 section 4.5.2
	}
	if d.n += int64(len(piece)); d.n > d.max {
		d.refuse(errTooBig)
	}
	if d.refusal == nil {
		d.pending = piece
	}
}
