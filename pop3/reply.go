package pop3

import (
	"bufio"
	"strings"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wire"
)

// maxLine bounds every reply line the client reads whole (status lines and
// the lines of CAPA, LIST and UIDL). RFC 2449 section 4 caps a response at
// 512 octets with its CRLF; real servers overrun that in banners, so the
// client allows eight times as much and still never buffers a hostile
// 100 KiB line.
const maxLine = 4096

// statusLine is one status line: "+OK text", "-ERR text", or a SASL
// continuation "+ base64" (RFC 5034 section 4).
type statusLine struct {
	// OK is true for "+OK".
	OK bool
	// Continue is true for a SASL challenge line ("+ " and base64).
	Continue bool
	// RespCode is the RFC 2449 section 8 response code without brackets
	// ("AUTH", "IN-USE", "SYS/TEMP"), when the server gave one.
	RespCode string
	// Text is the rest of the line, without the response code.
	Text string
	// channel is how the line was received, for the error that shows it.
	channel mailsec.Channel
}

// err turns a -ERR reply into the POPServer error of op, keeping the text
// and the response code (RFC 3206) so callers can tell a bad password from
// a locked maildrop.
func (r *statusLine) err(op string) error {
	return &mailsec.Error{Code: mailsec.POPServer, Op: op,
		Reply: &mailsec.Reply{RespCode: r.RespCode, Lines: []string{r.Text}, Channel: r.channel}}
}

// parseReply reads a status line. RFC 1939 section 3 makes the indicators
// "+OK" and "-ERR" upper case, followed by a space or the end of the line;
// RFC 5034 section 4 adds "+" alone or "+ " for a SASL challenge.
func parseReply(line string) (*statusLine, error) {
	var rep statusLine
	var rest string
	switch {
	case line == "+OK" || strings.HasPrefix(line, "+OK "):
		rep.OK, rest = true, strings.TrimPrefix(line[3:], " ")
	case line == "-ERR" || strings.HasPrefix(line, "-ERR "):
		rest = strings.TrimPrefix(line[4:], " ")
	case line == "+" || strings.HasPrefix(line, "+ "):
		rep.Continue = true
		rep.Text = strings.TrimPrefix(line[1:], " ")
		return &rep, nil
	default:
		return nil, wire.Quoting("read reply", "malformed status line %q", wire.Clip(line))
	}
	rep.RespCode, rep.Text = splitRespCode(rest)
	return &rep, nil
}

// splitRespCode takes an RFC 2449 section 8 response code off the front
// of the text: "[" resp-level *("/" resp-level) "]", each level one or
// more printable characters other than "/" and "]". A "[" inside is
// refused too: no registered code has one, and it would make the code
// ambiguous to print.
func splitRespCode(s string) (string, string) {
	if !strings.HasPrefix(s, "[") {
		return "", s
	}
	end := strings.IndexByte(s, ']')
	if end < 2 {
		return "", s
	}
	code := s[1:end]
	for _, level := range strings.Split(code, "/") {
		if level == "" {
			return "", s
		}
		for i := 0; i < len(level); i++ {
			if level[i] <= ' ' || level[i] > '~' || level[i] == '[' {
				return "", s
			}
		}
	}
	return strings.ToUpper(code), strings.TrimPrefix(s[end+1:], " ")
}

// readMulti reads the lines of a multi-line response after its status line
// (RFC 1939 section 3): each line has a leading "." removed when it has
// one, and a line of "." alone ends the response. At most max lines are
// accepted so that a hostile server cannot grow the result without bound.
func readMulti(r *bufio.Reader, max int, each func(line string) error) error {
	for n := 0; ; n++ {
		line, err := wire.ReadLine(r, maxLine)
		if err != nil {
			return err
		}
		if line == "." {
			return nil
		}
		if n == max {
			return mailsec.Errorf(mailsec.Protocol, "read reply", nil, "multi-line response longer than %d lines", max)
		}
		if err := each(strings.TrimPrefix(line, ".")); err != nil {
			return err
		}
	}
}
