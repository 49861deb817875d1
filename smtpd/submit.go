package smtpd

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"mime"
	"net/mail"
	"strings"
	"time"
)

// maxFromField bounds the From header field smtpd unfolds to check it: far
// more than any list of authors, and a bound on what a client can make
// the server hold.
const maxFromField = 64 << 10

var (
	errFromRefused    = rep(550, "5.7.1", "From header field refused")
	errFromUnreadable = rep(550, "5.7.1", "From header field cannot be parsed (RFC 5322 section 3.6.2), so its addresses cannot be checked")
)

// submission is the message of a transaction on the Submission or SMTPS
// listener, on its way to the Backend. As a message submission agent
// smtpd completes it (RFC 6409 section 8): the header section streams
// through, line by line, noting Date and Message-ID and collecting From;
// at its end the missing Date (section 8.2) and Message-ID (section 8.3)
// are added, and the FromChecker, if any, is asked about the From
// addresses. The body streams through untouched. The MX listener does
// none of this: it never rewrites a message.
type submission struct {
	r     io.Reader
	ctx   context.Context
	info  SessionInfo
	env   *Envelope
	check FromChecker // nil: no From check
	host  string      // the right side of a Message-ID

	buf     [4096]byte
	line    []byte // the header line being read
	out     []byte // completed octets not yet returned
	inBody  bool   // the header section is over
	field   string // lower-case name of the field being read
	hasDate bool
	hasID   bool
	from    []byte // the From field values, unfolded, comma-separated
	// fromTooLong is set when From went beyond maxFromField.
	fromTooLong bool
	err         error // the source's error, returned once out is empty

	// refusal is the FromChecker's verdict; Read returns it from then on,
	// so the Backend stores nothing.
	refusal *reply
}

// submission wraps msg for the Backend when the listener is a submission
// one, and returns nil for MX.
func (ss *session) submission(msg io.Reader, env *Envelope) *submission {
	if ss.kind == MX {
		return nil
	}
	s := &submission{r: msg, ctx: ss.ctx, info: ss.info(), env: env, host: ss.srv.host}
	s.check, _ = ss.srv.Backend.(FromChecker)
	return s
}

// verdict is the outcome of a delivery of the message: the refusal of the
// From check when there was one (the Backend saw it as the message's
// error), else err. It may be called on nil.
func (s *submission) verdict(err error) error {
	if s != nil && s.refusal != nil {
		return s.refusal
	}
	return err
}

// Read implements io.Reader.
func (s *submission) Read(p []byte) (int, error) {
	for len(s.out) == 0 {
		switch {
		case s.refusal != nil:
			return 0, s.refusal
		case s.err != nil:
			return 0, s.err
		case s.inBody:
			return s.r.Read(p)
		}
		n, err := s.r.Read(s.buf[:])
		s.header(s.buf[:n])
		if err == io.EOF && !s.inBody && s.refusal == nil {
			s.endOfHeader(nil) // a message that is all header
		}
		s.err = err
	}
	n := copy(p, s.out)
	s.out = s.out[n:]
	return n, nil
}

// header takes octets of the header section; whatever follows its end is
// body and is passed on as it is.
func (s *submission) header(p []byte) {
	for len(p) > 0 && !s.inBody && s.refusal == nil {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.line = append(s.line, p...)
			if len(s.line) > 2*maxTextLine {
				s.tooLong(s.line)
			}
			return
		}
		l := append(s.line, p[:i+1]...)
		p = p[i+1:]
		s.line = l[:0] // reused once headerLine copied l out
		if len(l) > 2*maxTextLine {
			// The same line, whether it came in one read or many.
			s.tooLong(l)
			continue
		}
		s.headerLine(l)
	}
	if s.refusal == nil {
		s.out = append(s.out, p...)
	}
}

// tooLong gives up on a header line longer than any the data reader lets
// through: it passes l on as it is, with the rest of the message, for the
// data reader's refusal to come.
func (s *submission) tooLong(l []byte) {
	s.out = append(s.out, l...)
	s.line, s.inBody = nil, true
}

// headerLine handles one line of the header section, CRLF included.
func (s *submission) headerLine(l []byte) {
	switch {
	case len(l) <= 2 && bytes.Equal(l, []byte("\r\n")):
		s.endOfHeader(l) // the empty line that separates the body
		return
	case l[0] == ' ' || l[0] == '\t': // a folded line continues the field
		if s.field == "from" {
			s.addFrom(l)
		}
	default:
		name, value, ok := fieldName(l)
		if !ok {
			// Not a header field: the header section ended without its
			// empty line. The fields go before it, and the empty line.
			s.endOfHeader([]byte("\r\n"))
			s.out = append(s.out, l...)
			return
		}
		s.field = strings.ToLower(name)
		switch s.field {
		case "date":
			s.hasDate = true
		case "message-id":
			s.hasID = true
		case "from":
			if len(s.from) > 0 {
				s.from = append(s.from, ',')
			}
			s.addFrom(value)
		}
	}
	s.out = append(s.out, l...)
}

// addFrom appends part of the From field, without its line end, up to
// maxFromField octets.
func (s *submission) addFrom(b []byte) {
	b = bytes.TrimRight(b, "\r\n")
	if len(s.from)+len(b) > maxFromField {
		s.fromTooLong = true
		return
	}
	s.from = append(s.from, b...)
}

// endOfHeader adds the missing fields, then sep (the empty line, or nil
// at the end of a message that is all header), after asking the
// FromChecker.
func (s *submission) endOfHeader(sep []byte) {
	s.inBody = true
	if s.check != nil {
		if r := s.checkFrom(); r != nil {
			s.refusal, s.out = r, nil
			return
		}
	}
	if len(s.line) > 0 { // a last header line without CRLF
		s.out = append(s.out, s.line...)
		s.line = nil
		if !s.hasDate || !s.hasID {
			s.out = append(s.out, "\r\n"...)
		}
	}
	now := time.Now()
	if !s.hasDate {
		s.out = append(s.out, "Date: "+now.Format(time.RFC1123Z)+"\r\n"...)
	}
	if !s.hasID {
		s.out = append(s.out, "Message-ID: <"+messageID(now)+"@"+s.host+">\r\n"...)
	}
	s.out = append(s.out, sep...)
}

// checkFrom asks the FromChecker about the From addresses and returns
// the refusal, if any.
func (s *submission) checkFrom() *reply {
	var addrs []string
	if s.fromTooLong {
		return errFromUnreadable
	}
	if len(s.from) > 0 {
		list, err := fromParser.ParseList(string(s.from))
		if err != nil {
			return errFromUnreadable
		}
		for _, a := range list {
			addrs = append(addrs, a.Address)
		}
	}
	if err := s.check.CheckFrom(s.ctx, s.info, s.env, addrs); err != nil {
		return replyFor(err, errFromRefused)
	}
	return nil
}

// fromParser reads From fields whatever the charset of their display
// names (RFC 2047): only the addresses matter here.
var fromParser = mail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(_ string, r io.Reader) (io.Reader, error) { return r, nil },
}}

// fieldName splits a header line into its field name and value (RFC 5322
// section 2.2: printable ASCII but ":" up to the colon; the obsolete
// white space before the colon, section 4.5, is allowed).
func fieldName(l []byte) (string, []byte, bool) {
	i := bytes.IndexByte(l, ':')
	if i <= 0 {
		return "", nil, false
	}
	name := bytes.TrimRight(l[:i], " \t")
	if len(name) == 0 {
		return "", nil, false
	}
	for _, c := range name {
		if c < '!' || c > '~' {
			return "", nil, false
		}
	}
	return string(name), l[i+1:], true
}

// messageID returns the unique left side of a Message-ID (RFC 5322
// section 3.6.4): the time, and 80 random bits so that no two servers
// of one name, nor two messages of one second, share it.
func messageID(now time.Time) string {
	var b [10]byte
	rand.Read(b[:])
	return now.UTC().Format("20060102150405") + "." + strings.ToUpper(hex.EncodeToString(b[:]))
}
