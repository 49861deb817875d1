package pop3

import (
	"bufio"
	"bytes"
	"io"

	"github.com/mailsec/mailsec"
)

// dotReader streams the body of a multi-line response (RETR, TOP) and
// removes the byte stuffing of RFC 1939 section 3: a line that starts with
// "." loses that dot, and a line of "." alone ends the body (io.EOF). Only
// CRLF ends a line there, so only CRLF "." CRLF ends the body: a "." after
// a bare LF did not start a line and is data, kept byte for byte, or a
// message holding "\n.\n" would end early and the rest be read as the
// next replies. It copies straight from the bufio.Reader into the
// caller's buffer, so memory stays flat however large the message is and
// however long its lines; the line limit of status lines does not apply to
// message content.
type dotReader struct {
	r   *bufio.Reader
	bol bool  // the next octet starts a line (it follows CRLF)
	cr  bool  // the last octet returned was CR
	n   int64 // octets returned so far
	err error // sticky: io.EOF after the terminator, or the failure
}

func newDotReader(r *bufio.Reader) *dotReader { return &dotReader{r: r, bol: true} }

// Read implements io.Reader. It blocks only when it has nothing to return
// yet, so a caller gets every octet already received without waiting for
// more.
func (d *dotReader) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n := 0
	for n < len(p) {
		if d.r.Buffered() == 0 && n > 0 {
			break
		}
		if d.bol {
			// A dot at the start of a line needs up to two more octets
			// to decide between terminator and stuffing.
			if n > 0 && d.r.Buffered() < 3 {
				break
			}
			end, err := d.lineStart()
			if err != nil {
				d.err = err
				break
			}
			if end {
				d.err = io.EOF
				break
			}
		}
		if _, err := d.r.Peek(1); err != nil {
			d.err = closedMidMessage(err)
			break
		}
		b, _ := d.r.Peek(d.r.Buffered())
		lim := min(len(b), len(p)-n)
		if i := bytes.IndexByte(b[:lim], '\n'); i >= 0 {
			lim = i + 1
			d.bol = (i > 0 && b[i-1] == '\r') || (i == 0 && d.cr)
		}
		d.cr = b[lim-1] == '\r'
		copy(p[n:], b[:lim])
		d.r.Discard(lim)
		n += lim
	}
	d.n += int64(n)
	if n > 0 {
		return n, nil
	}
	return 0, d.err
}

// lineStart handles the first octets of a line: it reports the terminator
// ".CRLF" and drops a stuffed dot, which is any dot followed by something
// other than CRLF (RFC 1939 section 3), a bare LF included.
func (d *dotReader) lineStart() (end bool, err error) {
	b, err := d.r.Peek(1)
	if err != nil {
		return false, closedMidMessage(err)
	}
	d.bol = false
	if b[0] != '.' {
		return false, nil
	}
	b, err = d.r.Peek(2)
	if err != nil {
		return false, closedMidMessage(err)
	}
	if b[1] == '\r' {
		b, err = d.r.Peek(3)
		if err != nil {
			return false, closedMidMessage(err)
		}
		if b[2] == '\n' {
			d.r.Discard(3)
			return true, nil
		}
	}
	d.r.Discard(1)
	return false, nil
}

// closedMidMessage is the error of a body that ends without its
// terminating line: the message is incomplete and must not be kept.
func closedMidMessage(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	e := mailsec.NetError("read message", mailsec.SocketRx, err)
	if me, ok := e.(*mailsec.Error); ok && me.Code == mailsec.SocketRx {
		me.Detail = "the server closed the connection before the end of the message"
	}
	return e
}
