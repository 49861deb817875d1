package wire

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/mailsec/mailsec"
)

// ReadLine reads one reply line without its ending; a bare LF ends a line
// too, since some servers send one. A line longer than max octets is
// refused after reading at most max+2 of them, so that a hostile server
// cannot make the client buffer without bound. Errors are as of "read
// reply" (see Reading).
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
			return string(bytes.TrimSuffix(buf[:len(buf)-1], []byte("\r"))), nil
		case bufio.ErrBufferFull:
			continue
		}
		return "", mailsec.NetError("read reply", mailsec.SocketRx, err)
	}
}

// Clip shortens hostile text for an error message and keeps it valid UTF-8.
func Clip(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
