package smtp

import (
	"io"

	"github.com/mailsec/mailsec"
)

// maxTextLine is the longest text line without its CRLF (RFC 5321 section
// 4.5.3.1.6).
const maxTextLine = 998

var crlf = []byte("\r\n")

// copyMessage streams src to dst with every line ending made CRLF (a bare LF
// or bare CR becomes CRLF, so the message can never carry the bare line
// endings that SMTP smuggling relies on) and, when stuff is set, a dot
// doubled at the start of each line (RFC 5321 section 4.5.2). The result
// always ends in CRLF unless it is empty. It returns the octets written.
// Memory use is buf, whatever the message size.
func copyMessage(dst io.Writer, src io.Reader, buf []byte, stuff, allowLong bool) (int64, error) {
	var (
		written int64
		atStart = true
		prevCR  = false
		lineLen = 0
		lineNo  = 1
	)
	put := func(p []byte) error {
		if len(p) == 0 {
			return nil
		}
		n, err := dst.Write(p)
		written += int64(n)
		return err
	}
	for {
		n, rerr := src.Read(buf)
		p := buf[:n]
		start := 0
		for i := 0; i < n; i++ {
			b := p[i]
			if prevCR {
				prevCR = false
				if b == '\n' {
					start = i + 1
					continue
				}
			}
			switch b {
			case '\r', '\n':
				if err := put(p[start:i]); err != nil {
					return written, err
				}
				if err := put(crlf); err != nil {
					return written, err
				}
				prevCR = b == '\r'
				atStart, lineLen, start = true, 0, i+1
				lineNo++
			default:
				if atStart && stuff && b == '.' {
					if err := put(p[start:i]); err != nil {
						return written, err
					}
					if err := put([]byte{'.'}); err != nil {
						return written, err
					}
					start = i
				}
				atStart = false
				lineLen++
				if lineLen > maxTextLine && !allowLong {
					return written, mailsec.Errorf(mailsec.Data, "DATA", nil,
						"line %d of the message is longer than %d octets (RFC 5321 section 4.5.3.1.6); encode it (quoted-printable or base64) or allow long lines", lineNo, maxTextLine)
				}
			}
		}
		if err := put(p[start:n]); err != nil {
			return written, err
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return written, mailsec.Errorf(mailsec.Data, "read message", rerr, "cannot read the message")
		}
	}
	if !atStart {
		if err := put(crlf); err != nil {
			return written, err
		}
	}
	return written, nil
}
