package wire

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/mailsec/mailsec"
)

// ReadLine reads one reply line without its CRLF. A line ends only at CRLF
// (RFC 5321 section 2.3.8, RFC 1939 section 3): a bare LF or a bare CR is
// refused, so that a server or a man in the middle can never make the
// client read one line as two replies (the SMTP smuggling family, turned
// against the client). A line longer than max octets is refused after
// reading at most max+2 of them, so that a hostile server cannot make the
// client buffer without bound. Errors are as of "read reply" (see Reading).
func ReadLine(r *bufio.Reader, max int) (string, error) {
	var buf []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(buf)+len(frag) > max+2 {
			return "", mailsec.Errorf(mailsec.Protocol, "read reply", nil, "reply line longer than %d octets", max)
		}
		buf = append(buf, frag...)
		switch err {
		case nil:
			return crlfLine(buf)
		case bufio.ErrBufferFull:
			continue
		}
		return "", mailsec.NetError("read reply", mailsec.SocketRx, err)
	}
}

// crlfLine checks that line, which ends in LF, ends in CRLF and holds no
// other CR, and returns it without the CRLF.
func crlfLine(line []byte) (string, error) {
	text, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok {
		return "", Quoting("read reply",
			"reply line %q ends in a bare LF; a line ends only at CRLF (RFC 5321 section 2.3.8)", Clip(string(line)))
	}
	if bytes.IndexByte(text, '\r') >= 0 {
		return "", Quoting("read reply",
			"reply line %q holds a bare CR; a line ends only at CRLF (RFC 5321 section 2.3.8)", Clip(string(line)))
	}
	return string(text), nil
}

// Quoting builds the Protocol error of op whose detail quotes text the
// server sent (through Clip). It is marked as received in clear text, the
// cautious reading, until Session.Fail records how it really came.
func Quoting(op, format string, args ...any) *mailsec.Error {
	e := mailsec.Errorf(mailsec.Protocol, op, nil, format, args...)
	e.Channel = mailsec.ChannelCleartext
	return e
}

// Clip shortens hostile text for an error message and keeps it valid UTF-8.
func Clip(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
