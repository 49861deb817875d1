package smtp

import (
	"bufio"
	"strings"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wire"
)

// Limits on what a server may send. RFC 5321 section 4.5.3.1.5 caps a reply
// line at 512 octets; real servers overrun it in EHLO and banners, so the
// client tolerates eight times that and still bounds memory.
const (
	maxReplyLine  = 4096
	maxReplyLines = 256
)

// replyErr turns a reply into the *mailsec.Error of op.
func replyErr(r *mailsec.Reply, op string, code mailsec.Code) error {
	return &mailsec.Error{Code: code, Op: op, Reply: r}
}

// readReply reads one possibly multi-line reply (RFC 5321 section 4.2.1):
// every line carries the same three-digit code, "-" after it on all lines
// but the last. Every line ends in CRLF (see wire.ReadLine): a bare LF
// must not split one reply into two.
func readReply(r *bufio.Reader, raw func(line string)) (*mailsec.Reply, error) {
	rep := &mailsec.Reply{}
	for n := 0; ; n++ {
		if n == maxReplyLines {
			return nil, mailsec.Errorf(mailsec.Protocol, "read reply", nil, "reply has more than %d lines", maxReplyLines)
		}
		line, err := wire.ReadLine(r, maxReplyLine)
		if err != nil {
			return nil, err
		}
		if raw != nil {
			raw(line)
		}
		code, more, text, perr := parseReplyLine(line)
		if perr != nil {
			return nil, perr
		}
		if n == 0 {
			rep.Code = code
		} else if code != rep.Code {
			return nil, mailsec.Errorf(mailsec.Protocol, "read reply", nil, "reply code changed from %d to %d inside a multi-line reply", rep.Code, code)
		}
		rep.Lines = append(rep.Lines, text)
		if !more {
			break
		}
	}
	rep.Enhanced, rep.Lines = splitEnhanced(rep.Code, rep.Lines)
	return rep, nil
}

// parseReplyLine splits "250-text" into its parts.
func parseReplyLine(line string) (code int, more bool, text string, err error) {
	if len(line) < 3 || !isDigit(line[0]) || !isDigit(line[1]) || !isDigit(line[2]) ||
		line[0] < '2' || line[0] > '5' {
		return 0, false, "", wire.Quoting("read reply", "malformed reply line %q", wire.Clip(line))
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	switch {
	case len(line) == 3:
		return code, false, "", nil
	case line[3] == ' ':
		return code, false, line[4:], nil
	case line[3] == '-':
		return code, true, line[4:], nil
	}
	return 0, false, "", wire.Quoting("read reply", "malformed reply line %q", wire.Clip(line))
}

// splitEnhanced removes an RFC 3463 enhanced status code from the start of
// each line when the first line has one whose class matches the reply
// code's first digit (RFC 3463 section 3: class 2, 4 or 5).
func splitEnhanced(code int, lines []string) (string, []string) {
	if len(lines) == 0 {
		return "", lines
	}
	first, _, _ := strings.Cut(lines[0], " ")
	if !isEnhanced(first) || int(first[0]-'0') != code/100 {
		return "", lines
	}
	out := make([]string, len(lines))
	for i, l := range lines {
		if p, rest, ok := strings.Cut(l, " "); ok && p == first {
			out[i] = rest
		} else if l == first {
			out[i] = ""
		} else {
			out[i] = l
		}
	}
	return first, out
}

// isEnhanced checks the class.subject.detail form: class one digit in 2, 4
// or 5; subject and detail one to three digits.
func isEnhanced(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || (parts[0] != "2" && parts[0] != "4" && parts[0] != "5") {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if !isDigit(p[i]) {
				return false
			}
		}
	}
	return true
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
