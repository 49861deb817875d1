package smtpd

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"time"
)

// bdatTransfer is a message arriving in BDAT chunks (RFC 3030). The
// Backend runs in its own goroutine from the first chunk on, reading from a
// pipe the chunks are written into, so a message is never held in memory
// whole however many chunks it spans.
type bdatTransfer struct {
	pw     *io.PipeWriter
	result chan error
	size   int64
	check  lineChecker
}

// abort ends the delivery without storing anything and waits for it.
func (t *bdatTransfer) abort() {
	t.pw.CloseWithError(errAborted)
	<-t.result
}

// bdat handles "BDAT <size> [LAST]". Whatever the verdict, exactly <size>
// octets follow the command and are read, so the session stays in step
// (RFC 3030 section 2).
func (ss *session) bdat(cmd command) *reply {
	f := strings.Fields(cmd.arg)
	var size int64
	var err error
	if len(f) >= 1 && len(f) <= 2 && isDigits(f[0]) {
		size, err = strconv.ParseInt(f[0], 10, 64)
	}
	if len(f) < 1 || len(f) > 2 || !isDigits(f[0]) || err != nil || len(f) == 2 && !strings.EqualFold(f[1], "LAST") {
		// Without a size the chunk cannot be skipped: the session is lost.
		return &reply{code: 501, enh: "5.5.4", text: "Syntax: BDAT size [LAST]; closing", close: true}
	}
	last := len(f) == 2
	ss.in.startData(ss.srv.Limits.CommandTimeout, ss.srv.Limits.DataTimeout)
	if r := ss.readyForMessage(false); r != nil {
		return ss.skip(size, r)
	}
	t := ss.tx.bdat
	if t == nil && last {
		return ss.bdatWhole(size)
	}
	if t == nil {
		t = &bdatTransfer{result: make(chan error, 1)}
		pr, pw := io.Pipe()
		t.pw = pw
		ss.tx.bdat = t
		d := ss.message(pr)
		go func() {
			err := d.run()
			pr.CloseWithError(err) // unblocks a writer if the Backend quit early
			t.result <- err
		}()
	}
	// Compared before adding: a huge size would overflow the sum into a
	// negative number and pass, letting the chunk stream to disk unbounded
	// (RFC 1870 section 6).
	if size > ss.srv.Limits.MaxMessageSize-t.size {
		ss.endTransaction(RefusedSize)
		return ss.skip(size, errTooBig)
	}
	t.size += size
	w := &chunkWriter{t: t}
	if _, err := io.CopyN(w, ss.r, size); err != nil {
		ss.reset()
		return connFailed(err)
	}
	if last && t.check.prevCR {
		t.check.refuse(errBareLF)
	}
	if t.check.refusal != nil {
		r := t.check.refusal
		ss.endTransaction(refusalOutcome(r))
		return r
	}
	if !last {
		if w.err != nil { // the Backend failed or refused; the transaction is over
			r, o := ss.deliveryFailed(w.err)
			ss.endTransaction(o)
			return r
		}
		return rep(250, "2.0.0", strconv.FormatInt(size, 10)+" octets received")
	}
	end := time.Now()
	t.pw.Close()
	err = <-t.result
	tx := ss.tx
	ss.tx = nil
	return ss.messageDone(&tx.env, t.size, nil, nil, err, end)
}

// bdatWhole delivers a message sent as a single "BDAT <size> LAST" chunk,
// which is how clients send all but large messages, in the session's own
// goroutine: it needs neither the pipe nor the goroutine of a message
// spanning chunks.
func (ss *session) bdatWhole(size int64) *reply {
	if size > ss.srv.Limits.MaxMessageSize {
		ss.tx = nil
		ss.observeMessage(MessageInfo{Outcome: RefusedSize, Octets: size})
		return ss.skip(size, errTooBig)
	}
	cr := &chunkReader{r: io.LimitedReader{R: ss.r, N: size}}
	d := ss.message(cr)
	err := d.run()
	// A Backend that stopped early leaves the rest of the chunk to read.
	for cr.ioErr == nil && cr.r.N > 0 {
		io.Copy(io.Discard, struct{ io.Reader }{cr})
	}
	ss.tx = nil
	// Unless the connection failed the chunk was read whole (cr.r.N is 0).
	return ss.messageDone(d.env, size-cr.r.N, cr.ioErr, cr.check.refusal, err, cr.end)
}

// chunkReader hands out one whole-message chunk, checked as lineChecker
// does. A broken rule makes it return the refusal instead of io.EOF, so
// the Backend stores nothing; it keeps consuming the chunk all the same.
type chunkReader struct {
	r     io.LimitedReader
	check lineChecker
	end   time.Time // when the last octet was read
	ioErr error     // the connection failed before the chunk ended
}

func (c *chunkReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.check.check(p[:n])
	if c.r.N == 0 && c.end.IsZero() {
		c.end = time.Now()
		if c.check.prevCR {
			c.check.refuse(errBareLF) // a CR ending the message
		}
	}
	switch {
	case err != nil && c.r.N > 0:
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		c.ioErr = err
		return 0, err
	case c.check.refusal != nil:
		return 0, c.check.refusal
	}
	return n, err
}

// skip reads and drops a chunk that is refused, then answers r.
func (ss *session) skip(size int64, r *reply) *reply {
	if _, err := io.CopyN(io.Discard, ss.r, size); err != nil {
		return connFailed(err)
	}
	return r
}

// chunkWriter checks chunk data and feeds it to the delivery. After the
// Backend or the check failed it swallows the rest, so the chunk is still
// read to its end.
type chunkWriter struct {
	t   *bdatTransfer
	err error
}

// Write implements io.Writer; it never fails, so io.CopyN reads the whole chunk.
func (w *chunkWriter) Write(p []byte) (int, error) {
	if w.t.check.check(p); w.t.check.refusal == nil && w.err == nil {
		_, w.err = w.t.pw.Write(p)
	}
	return len(p), nil
}

// lineChecker applies DATA's line rules to BDAT content, whose chunk
// boundaries can fall anywhere: no bare CR or LF (RFC 5321 section 2.3.8;
// BINARYMIME is not offered), no NUL (RFC 5322 section 2.1) and no line
// over 1000 octets (section 4.5.3.1.6).
type lineChecker struct {
	prevCR  bool
	lineLen int
	refusal *reply
}

func (c *lineChecker) refuse(r *reply) {
	if c.refusal == nil {
		c.refusal = r
	}
}

func (c *lineChecker) check(p []byte) {
	if bytes.IndexByte(p, 0) >= 0 {
		c.refuse(errNUL) // as in DATA; BINARYMIME (RFC 3030 section 3) is not offered
		return
	}
	for len(p) > 0 && c.refusal == nil {
		if c.prevCR {
			if p[0] != '\n' {
				c.refuse(errBareLF)
				return
			}
			c.prevCR, c.lineLen, p = false, 0, p[1:]
			continue
		}
		i := bytes.IndexByte(p, '\n')
		seg := p
		if i >= 0 {
			seg = p[:i]
		}
		// The only CR allowed in seg is its last octet, followed by LF
		// either here or at the start of the next chunk.
		if j := bytes.IndexByte(seg, '\r'); j >= 0 && j != len(seg)-1 {
			c.refuse(errBareLF)
			return
		}
		endsCR := len(seg) > 0 && seg[len(seg)-1] == '\r'
		if c.lineLen += len(seg); c.lineLen+1 > maxTextLine {
			c.refuse(errLongTextLine)
			return
		}
		if i < 0 {
			c.prevCR = endsCR
			return
		}
		if !endsCR {
			c.refuse(errBareLF)
			return
		}
		c.lineLen, p = 0, p[i+1:]
	}
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
