package dsn

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxLine is RFC 5322 section 2.1.1's limit on a line, without its CRLF.
const maxLine = 998

// wrapWidth is where wrap breaks lines when it can: the 78 of RFC 5322
// section 2.1.1's SHOULD.
const wrapWidth = 78

// maxWord is the longest run of non-space that wrap leaves whole; longer
// ones are broken so that no line can exceed maxLine.
const maxWord = 900

// fold writes a header field name: value, folded at spaces (RFC 5322
// section 2.2.3) and ended with CRLF.
func fold(w io.StringWriter, name, value string) {
	wrap(w, name, " ", value)
}

// wrap writes s's words after head, breaking the line before a word that
// would pass wrapWidth and starting each new line with cont (which for a
// header field must start with a space, so the break is a fold). Runs of
// white space become one space; a word longer than maxWord is broken.
func wrap(w io.StringWriter, head, cont, s string) {
	line, empty := head, true // empty: no word on line yet
	for _, word := range strings.Fields(s) {
		for word != "" {
			chunk := word
			if len(chunk) > maxWord {
				cut := maxWord
				for cut > 0 && !utf8.RuneStart(chunk[cut]) {
					cut--
				}
				chunk = chunk[:cut]
			}
			word = word[len(chunk):]
			if !empty && len(line)+1+len(chunk) > wrapWidth {
				w.WriteString(line + "\r\n")
				line, empty = cont, true
			}
			if line != "" && !strings.HasSuffix(line, " ") {
				line += " "
			}
			line += chunk
			empty = false
		}
	}
	w.WriteString(line + "\r\n")
}

// cleanText makes s safe for the explanation and UTF-8 fields: line breaks
// and tabs become spaces, so nothing can start a new header field or MIME
// line; other control and format characters (ESC, NUL, bidirectional
// overrides) and invalid UTF-8 become '?'.
func cleanText(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\r' || r == '\n' || r == '\t':
			return ' '
		case r == utf8.RuneError || !unicode.IsPrint(r):
			return '?'
		}
		return r
	}, s)
}

// cleanASCII is cleanText for the fields that must be ASCII (RFC 3464
// section 2.1.1): every non-ASCII character becomes '?' as well.
func cleanASCII(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\r' || r == '\n' || r == '\t':
			return ' '
		case r < ' ' || r > '~':
			return '?'
		}
		return r
	}, s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// IsXtext reports whether s is RFC 3461 section 4 xtext: printable ASCII
// but "+" and "=", with "+" and two upper-case hex digits for any other
// octet. ENVID and ORCPT values end up in queued envelopes, in the next
// hop's commands and in delivery reports, so nothing else may pass: a CR
// or LF would end the command line and start another.
func IsXtext(s string) bool {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '+':
			if i+2 >= len(s) || !isUpperHex(s[i+1]) || !isUpperHex(s[i+2]) {
				return false
			}
			i += 2
		case c < '!' || c > '~' || c == '=':
			return false
		}
	}
	return true
}

func isUpperHex(c byte) bool { return '0' <= c && c <= '9' || 'A' <= c && c <= 'F' }

// XtextDecode undoes RFC 3461 section 4's xtext ("+" and two hex digits
// for an octet); s is returned as it is when it is not valid xtext, as a
// caller that decoded it already would pass it.
func XtextDecode(s string) string {
	if !strings.Contains(s, "+") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '+' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return s
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return s
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String()
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// utf8AddrXtext writes a non-ASCII address in RFC 6533 section 3's
// utf-8-addr-xtext form, which is 7-bit: a character that is not a QCHAR
// becomes "\x{HEX}" with its code point. Invalid UTF-8 becomes "?" first
// (cleanText), since it has no code point to give.
func utf8AddrXtext(a string) string {
	var b strings.Builder
	for _, r := range cleanText(a) {
		if r > ' ' && r <= '~' && r != '+' && r != '=' && r != '\\' {
			b.WriteRune(r)
		} else {
			fmt.Fprintf(&b, `\x{%02X}`, r)
		}
	}
	return b.String()
}

// lineWriter copies the original message into the notice with its line
// ends all CRLF and no line over maxLine octets (RFC 5322 section 2.1.1,
// RFC 2045 section 2.8 for the 7bit and 8bit labels): a bare CR or LF ends
// a line, a longer line is broken (in the header, by a fold, so the field
// goes on), NUL becomes '?' and so do 8-bit octets unless eight is set.
// Close ends the last line with CRLF, so that the part ends with one
// before the next boundary.
type lineWriter struct {
	w      io.Writer
	header bool
	eight  bool
	n      int  // octets on the current line
	cr     bool // the last octet was a CR, its LF not seen yet
	out    []byte
}

func newLineWriter(w io.Writer, header, eight bool) *lineWriter {
	return &lineWriter{w: w, header: header, eight: eight}
}

// Write implements io.Writer.
func (l *lineWriter) Write(p []byte) (int, error) {
	l.out = l.out[:0]
	for _, c := range p {
		if l.cr {
			l.cr = false
			l.out = append(l.out, '\r', '\n')
			l.n = 0
			if c == '\n' {
				continue
			}
		}
		switch {
		case c == '\r':
			l.cr = true
			continue
		case c == '\n':
			l.out = append(l.out, '\r', '\n')
			l.n = 0
			continue
		case c == 0, c >= 0x80 && !l.eight:
			c = '?'
		}
		if l.n >= maxLine {
			l.out = append(l.out, '\r', '\n')
			l.n = 0
			if l.header {
				l.out = append(l.out, ' ')
				l.n = 1
			}
		}
		l.out = append(l.out, c)
		l.n++
	}
	if _, err := l.w.Write(l.out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Close ends an unfinished last line.
func (l *lineWriter) Close() error {
	if l.cr || l.n > 0 {
		l.cr, l.n = false, 0
		_, err := l.w.Write([]byte("\r\n"))
		return err
	}
	return nil
}
