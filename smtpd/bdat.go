package smtpd

import (
	"bytes"
	"io"
	"strconv"
	"strings"
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
	if t == nil {
		t = &bdatTransfer{result: make(chan error, 1)}
		pr, pw := io.Pipe()
		t.pw = pw
		ss.tx.bdat = t
		env, msg := ss.message(pr)
		go func() {
			err := ss.srv.Backend.Deliver(env, msg)
			pr.CloseWithError(err) // unblocks a writer if the Backend quit early
			t.result <- err
		}()
	}
	if t.size += size; t.size > ss.srv.Limits.MaxMessageSize {
		ss.reset()
		return ss.skip(size, errTooBig)
	}
	w := &chunkWriter{t: t}
	if _, err := io.CopyN(w, ss.r, size); err != nil {
		ss.reset()
		if isTimeout(err) {
			return errTimeout
		}
		return &reply{code: 421, enh: "4.4.2", text: "Connection error", close: true}
	}
	if last && t.check.prevCR {
		t.check.refuse(errBareLF)
	}
	if t.check.refusal != nil {
		r := t.check.refusal
		ss.reset()
		return r
	}
	if !last {
		if w.err != nil { // the Backend failed; the transaction is over
			ss.reset()
			return errStoreFailed
		}
		return rep(250, "2.0.0", strconv.FormatInt(size, 10)+" octets received")
	}
	t.pw.Close()
	err = <-t.result
	tx := ss.tx
	ss.tx = nil
	if err != nil {
		ss.log.Error("delivery failed", "err", err)
		return errStoreFailed
	}
	return ss.accepted(tx, t.size)
}

// skip reads and drops a chunk that is refused, then answers r.
func (ss *session) skip(size int64, r *reply) *reply {
	if _, err := io.CopyN(io.Discard, ss.r, size); err != nil {
		if isTimeout(err) {
			return errTimeout
		}
		return &reply{code: 421, enh: "4.4.2", text: "Connection error", close: true}
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
// BINARYMIME is not offered) and no line over 1000 octets (section
// 4.5.3.1.6).
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
