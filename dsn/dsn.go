// Package dsn writes delivery status notifications (RFC 3464): the
// bounces and delay notices a relay sends back to a message's envelope
// sender, as multipart/report messages (RFC 6522) of three parts: an
// explanation for people, the machine-readable delivery-status part, and
// the original message or its header.
//
// Everything in a notice that came from outside (the remote server's
// reply, the original message, the addresses) is made safe on the way in:
// it cannot add header fields or MIME parts, carries no control
// characters, and no line of the notice exceeds 998 octets (RFC 5322
// section 2.1.1).
package dsn

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"mime/quotedprintable"
	"net/textproto"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
)

// Action is what became of the message for one recipient (RFC 3464
// section 2.3.3).
type Action string

// The actions of RFC 3464 section 2.3.3.
const (
	// Failed: the message could not be delivered and will not be retried.
	Failed Action = "failed"
	// Delayed: not delivered yet; the relay keeps trying.
	Delayed Action = "delayed"
	// Delivered: a final server accepted the message.
	Delivered Action = "delivered"
	// Relayed: handed on to a system that sends no notices itself.
	Relayed Action = "relayed"
	// Expanded: delivered to a list or alias that forwards it on.
	Expanded Action = "expanded"
)

// Recipient is one recipient's delivery status: a per-recipient group of
// the delivery-status part (RFC 3464 section 2.3).
type Recipient struct {
	// Final is the address the relay tried to deliver to (Final-Recipient).
	// Required.
	Final string
	// Original is the RCPT ORCPT parameter as the submitter gave it,
	// "type;xtext" (RFC 3461 section 4.2), "" when there was none; it is
	// xtext-decoded into Original-Recipient.
	Original string
	// Action is what became of the message. Required.
	Action Action
	// Status is the RFC 3463 status code, "5.1.1". Required; see
	// StatusFromReply.
	Status string
	// RemoteMTA is the host name (A-labels) of the server that answered,
	// "" when none did (Remote-MTA).
	RemoteMTA string
	// Diagnostic is that server's reply, "550 5.1.1 User unknown", ""
	// when there was none (Diagnostic-Code, type smtp).
	Diagnostic string
	// DiagnosticChannel says how the reply was received. The readable
	// part of the report marks a reply that came in cleartext or over
	// unverified TLS, since anyone on the path could have written it (a
	// phone number to call, a link to follow); the zero value, verified
	// TLS, adds nothing. The machine-readable Diagnostic-Code is the
	// reply as it was.
	DiagnosticChannel mailsec.Channel
	// LastAttempt is when delivery was last tried, zero to leave out
	// Last-Attempt-Date.
	LastAttempt time.Time
	// WillRetryUntil is when the relay gives up, for Delayed only; zero to
	// leave out Will-Retry-Until.
	WillRetryUntil time.Time
}

// Report describes one notice.
type Report struct {
	// ReportingMTA is this relay's host name (Reporting-MTA). Required.
	ReportingMTA string
	// From is the notice's From address; "" means
	// MAILER-DAEMON@ReportingMTA. The display name is always "Mail
	// Delivery System".
	From string
	// To is the original message's envelope sender, to whom the notice
	// goes. Required: mail from the null sender is never answered (RFC
	// 5321 section 6.1, RFC 3461 section 6.2).
	To string
	// EnvID is the MAIL ENVID parameter as the submitter gave it (xtext,
	// RFC 3461 section 4.4), "" when none; it is decoded into
	// Original-Envelope-Id.
	EnvID string
	// Arrival is when the relay accepted the message, zero to leave out
	// Arrival-Date.
	Arrival time.Time
	// Recipients are the recipients the notice is about, at least one.
	Recipients []Recipient
	// Headers returns only the original's header (RET=HDRS, RFC 3461
	// section 4.3) as text/rfc822-headers; otherwise the whole original
	// is returned as message/rfc822.
	Headers bool
	// MaxReturn caps the original octets returned; 0 means 10 MiB. A
	// longer original is returned as its header only, and a header
	// longer than MaxReturn is cut at a line boundary; the explanation
	// says so.
	MaxReturn int64
	// EightBit and UTF8 say how the original was submitted: with
	// BODY=8BITMIME (RFC 6152) and SMTPUTF8 (RFC 6531). The notice holds
	// 8-bit octets only when one is set, and then must be sent with
	// BODY=8BITMIME (and SMTPUTF8 when UTF8 is set). With neither, octets
	// above 0x7f in the original, which it should not have had, are
	// returned as '?' so that the part's 7bit label is true.
	//
	// With UTF8, the original comes back as message/global or
	// message/global-headers (RFC 6532 section 3.7) and the status part
	// is message/global-delivery-status with UTF-8 addresses as they are
	// (RFC 6533 section 6); without it, a non-ASCII address is written in
	// the 7-bit utf-8-addr-xtext form (RFC 6533 section 3).
	EightBit, UTF8 bool
	// MessageID is the notice's Message-ID, "<id@host>"; "" means a random
	// one at ReportingMTA.
	MessageID string
	// Date is the notice's Date; zero means now.
	Date time.Time
}

// defaultMaxReturn is what a zero Report.MaxReturn means.
const defaultMaxReturn = 10 << 20

// Write writes the complete notice, header and body with CRLF line ends,
// to w. original is the message as queued, header then body, and size its
// length in octets (the queue knows it): size decides, before anything is
// written, whether the whole message fits in MaxReturn, so that the
// original can be streamed from original to w without being held in
// memory; only its header is. Write fails, having written part of the
// notice, if original holds more than size octets or fails to read; the
// caller then discards what was written.
func Write(w io.Writer, r *Report, original io.Reader, size int64) error {
	if err := r.check(); err != nil {
		return err
	}
	max := r.MaxReturn
	if max <= 0 {
		max = defaultMaxReturn
	}
	utf8Status := r.UTF8 && r.hasUTF8Address()

	br := bufio.NewReader(original)
	hdr, sep, cut, err := readHeader(br, max)
	if err != nil {
		return fmt.Errorf("dsn: reading the original: %w", err)
	}
	// The original's header goes out through the same line filter that
	// checks the rest of it, so the copy kept for Message-ID is exactly
	// what is returned.
	var normHdr bytes.Buffer
	hl := newLineWriter(&normHdr, true, r.EightBit || r.UTF8)
	hl.Write(hdr)
	hl.Close()
	// Whether the whole original fits must be known before the
	// explanation, which says what is attached, is written.
	full := !r.Headers && !cut && size <= max

	// Errors writing to bw are not checked one by one: bufio.Writer keeps
	// the first and the final Flush returns it.
	bw := bufio.NewWriter(w)
	// multipart.Writer's boundary is 240 random bits, which no original can
	// hold but by chance (RFC 2046 section 5.1.1 asks only that it not
	// occur), so the original need not be scanned for it before it is
	// streamed.
	mw := multipart.NewWriter(bw)
	r.writeHeader(bw, mw.Boundary(), origMessageID(normHdr.Bytes()))

	text := r.explanation(full, cut, size, max)
	h := textproto.MIMEHeader{}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Description", "Notification")
	if isASCII(text) {
		h.Set("Content-Transfer-Encoding", "7bit")
	} else {
		// Quoted-printable keeps the notice 7-bit when only the
		// explanation has UTF-8 in it (RFC 2045 section 6.7).
		h.Set("Content-Transfer-Encoding", "quoted-printable")
	}
	pw, _ := mw.CreatePart(h)
	if h.Get("Content-Transfer-Encoding") == "quoted-printable" {
		qw := quotedprintable.NewWriter(pw)
		io.WriteString(qw, text)
		qw.Close()
	} else {
		io.WriteString(pw, text)
	}

	h = textproto.MIMEHeader{}
	if utf8Status {
		h.Set("Content-Type", "message/global-delivery-status")
		h.Set("Content-Transfer-Encoding", "8bit")
	} else {
		h.Set("Content-Type", "message/delivery-status")
		h.Set("Content-Transfer-Encoding", "7bit")
	}
	h.Set("Content-Description", "Delivery report")
	pw, _ = mw.CreatePart(h)
	pw.Write(r.deliveryStatus(utf8Status))

	h = textproto.MIMEHeader{}
	switch {
	case full && r.UTF8:
		h.Set("Content-Type", "message/global")
	case full:
		h.Set("Content-Type", "message/rfc822")
	case r.UTF8:
		h.Set("Content-Type", "message/global-headers")
	default:
		h.Set("Content-Type", "text/rfc822-headers")
	}
	if r.EightBit || r.UTF8 {
		h.Set("Content-Transfer-Encoding", "8bit")
	} else {
		h.Set("Content-Transfer-Encoding", "7bit")
	}
	if full {
		h.Set("Content-Description", "Original message")
	} else {
		h.Set("Content-Description", "Original message header")
	}
	pw, _ = mw.CreatePart(h)
	pw.Write(normHdr.Bytes())
	if full {
		if sep > 0 {
			io.WriteString(pw, "\r\n")
		}
		body := newLineWriter(pw, false, r.EightBit || r.UTF8)
		// One octet more than the rest of size is allowed for, so an
		// original longer than it said is noticed rather than returned
		// past MaxReturn.
		rest := size - int64(len(hdr)+sep)
		n, err := io.Copy(body, io.LimitReader(br, rest+1))
		if err != nil {
			return fmt.Errorf("dsn: copying the original: %w", err)
		}
		if n > rest {
			return errors.New("dsn: the original is longer than its size")
		}
		body.Close()
	}
	mw.Close()
	return bw.Flush()
}

// check rejects a Report that would make an invalid notice.
func (r *Report) check() error {
	if r.ReportingMTA == "" {
		return errors.New("dsn: no ReportingMTA")
	}
	if r.To == "" {
		return errors.New("dsn: no To: mail from the null sender is not answered (RFC 5321 section 6.1)")
	}
	if len(r.Recipients) == 0 {
		return errors.New("dsn: no recipients")
	}
	for i, rc := range r.Recipients {
		switch {
		case rc.Final == "":
			return fmt.Errorf("dsn: recipient %d has no Final address", i)
		case !validStatus(rc.Status):
			return fmt.Errorf("dsn: recipient %d: status %q is not an RFC 3463 code", i, rc.Status)
		}
		switch rc.Action {
		case Failed, Delayed, Delivered, Relayed, Expanded:
		default:
			return fmt.Errorf("dsn: recipient %d: unknown action %q", i, rc.Action)
		}
	}
	return nil
}

func (r *Report) hasUTF8Address() bool {
	for _, rc := range r.Recipients {
		if !isASCII(rc.Final) || !isASCII(XtextDecode(rc.Original)) {
			return true
		}
	}
	return false
}

// dateFormat is RFC 5322 section 3.3 date-time, the form of Arrival-Date
// and the other DSN dates (RFC 3464 section 2.2.5).
const dateFormat = "Mon, 02 Jan 2006 15:04:05 -0700"

// writeHeader writes the notice's header fields and the blank line after
// them.
func (r *Report) writeHeader(w *bufio.Writer, boundary, inReplyTo string) {
	// Addresses go into the header as-is only in a UTF-8 notice (RFC 6532
	// section 3.2); otherwise they are cut to ASCII to keep it 7-bit.
	addr := func(s string) string {
		if r.UTF8 {
			return cleanText(s)
		}
		return cleanASCII(s)
	}
	from := r.From
	if from == "" {
		from = "MAILER-DAEMON@" + r.ReportingMTA
	}
	date := r.Date
	if date.IsZero() {
		date = time.Now()
	}
	id := r.MessageID
	if id == "" {
		id = "<" + randomHex(16) + "@" + cleanASCII(r.ReportingMTA) + ">"
	}
	subject := "Successful Mail Delivery Report"
	for _, rc := range r.Recipients {
		if rc.Action == Failed {
			subject = "Undelivered Mail Returned to Sender"
			break
		}
		if rc.Action == Delayed {
			subject = "Delayed Mail (still being retried)"
		}
	}
	fold(w, "From:", `"Mail Delivery System" <`+addr(from)+">")
	fold(w, "To:", "<"+addr(r.To)+">")
	fold(w, "Subject:", subject)
	fold(w, "Date:", date.Format(dateFormat))
	fold(w, "Message-ID:", cleanASCII(id))
	if inReplyTo != "" {
		// Threads the notice with the message it is about (RFC 5322
		// section 3.6.4).
		fold(w, "In-Reply-To:", inReplyTo)
		fold(w, "References:", inReplyTo)
	}
	// Keeps vacation responders and the like from answering the notice
	// (RFC 3834 section 5).
	fold(w, "Auto-Submitted:", "auto-replied")
	fold(w, "MIME-Version:", "1.0")
	fold(w, "Content-Type:", `multipart/report; report-type=delivery-status; boundary="`+boundary+`"`)
	if r.EightBit || r.UTF8 {
		fold(w, "Content-Transfer-Encoding:", "8bit")
	}
	w.WriteString("\r\n")
}

// explanation is the first part: what happened, in words.
func (r *Report) explanation(full, cut bool, size, max int64) string {
	var b bytes.Buffer
	wrap(&b, "", "", "This is the mail system at host "+cleanText(r.ReportingMTA)+".")
	b.WriteString("\r\n")
	var failed, delayed bool
	for _, rc := range r.Recipients {
		failed = failed || rc.Action == Failed
		delayed = delayed || rc.Action == Delayed
	}
	if failed {
		wrap(&b, "", "", "Your message could not be delivered to one or more of its recipients. The mail system has given up on them.")
	}
	if failed && delayed {
		b.WriteString("\r\n")
	}
	if delayed {
		wrap(&b, "", "", "Your message has not been delivered yet to one or more of its recipients. The mail system is still trying; you need not send it again.")
	}
	if !failed && !delayed {
		wrap(&b, "", "", "This is the report you asked for on the delivery of your message.")
	}
	for _, rc := range r.Recipients {
		b.WriteString("\r\n")
		var s string
		switch rc.Action {
		case Failed:
			s = "could not be delivered and will not be tried again."
		case Delayed:
			s = "has not been delivered yet. The mail system will keep trying"
			if !rc.WillRetryUntil.IsZero() {
				s += " until " + rc.WillRetryUntil.Format(dateFormat)
			}
			s += ", and will tell you if it gives up."
		case Delivered:
			s = "was delivered."
		case Relayed:
			s = "was passed on to a mail system that does not report on delivery."
		case Expanded:
			s = "was delivered to a list or alias, which passed it on to its members."
		}
		wrap(&b, "", "    ", "<"+cleanText(rc.Final)+">: "+s)
		said := cleanText(rc.Diagnostic)
		if m := rc.DiagnosticChannel.Mark(); m != "" {
			said += " " + m
		}
		switch {
		case rc.Diagnostic != "" && rc.RemoteMTA != "":
			wrap(&b, "    ", "    ", "The server "+cleanText(rc.RemoteMTA)+" answered: "+said)
		case rc.Diagnostic != "":
			wrap(&b, "    ", "    ", "The answer was: "+said)
		case rc.RemoteMTA != "":
			wrap(&b, "    ", "    ", "The last server tried was "+cleanText(rc.RemoteMTA)+".")
		}
		if !rc.LastAttempt.IsZero() {
			wrap(&b, "    ", "    ", "Last attempt: "+rc.LastAttempt.Format(dateFormat)+".")
		}
		wrap(&b, "    ", "    ", "Status: "+rc.Status)
	}
	b.WriteString("\r\n")
	switch {
	case full:
		wrap(&b, "", "", "Your message is attached.")
	case cut:
		wrap(&b, "", "", fmt.Sprintf("The header of your message is longer than %d octets; only its first part is attached.", max))
	case !r.Headers:
		wrap(&b, "", "", fmt.Sprintf("Your message is %d octets, more than the %d returned; only its header is attached.", size, max))
	default:
		wrap(&b, "", "", "The header of your message is attached.")
	}
	return b.String()
}

// deliveryStatus is the second part (RFC 3464 section 2.1): the
// per-message fields, then a group of fields for each recipient, each
// group after a blank line, in the order of the section 2.2 and 2.3 ABNF.
// Values are ASCII (section 2.1.1) but for UTF-8 addresses in a
// message/global-delivery-status part (RFC 6533 section 6).
func (r *Report) deliveryStatus(utf8Status bool) []byte {
	var b bytes.Buffer
	if r.EnvID != "" {
		fold(&b, "Original-Envelope-Id:", cleanASCII(XtextDecode(r.EnvID)))
	}
	fold(&b, "Reporting-MTA:", "dns; "+cleanASCII(r.ReportingMTA))
	if !r.Arrival.IsZero() {
		fold(&b, "Arrival-Date:", r.Arrival.Format(dateFormat))
	}
	for _, rc := range r.Recipients {
		b.WriteString("\r\n")
		if rc.Original != "" {
			typ, a, ok := strings.Cut(XtextDecode(rc.Original), ";")
			if !ok {
				typ, a = "unknown", typ
			}
			fold(&b, "Original-Recipient:", address(strings.TrimSpace(typ), strings.TrimSpace(a), utf8Status))
		}
		fold(&b, "Final-Recipient:", address("rfc822", rc.Final, utf8Status))
		fold(&b, "Action:", string(rc.Action))
		fold(&b, "Status:", rc.Status)
		if rc.RemoteMTA != "" {
			fold(&b, "Remote-MTA:", "dns; "+cleanASCII(rc.RemoteMTA))
		}
		if rc.Diagnostic != "" {
			fold(&b, "Diagnostic-Code:", "smtp; "+cleanASCII(rc.Diagnostic))
		}
		if !rc.LastAttempt.IsZero() {
			fold(&b, "Last-Attempt-Date:", rc.LastAttempt.Format(dateFormat))
		}
		if rc.Action == Delayed && !rc.WillRetryUntil.IsZero() {
			fold(&b, "Will-Retry-Until:", rc.WillRetryUntil.Format(dateFormat))
		}
	}
	return b.Bytes()
}

// address writes an address-type ";" address value. An rfc822 address
// must be ASCII; a non-ASCII one takes the utf-8 type instead (RFC 6533
// section 3): as-is in a global status part, else as utf-8-addr-xtext.
func address(typ, a string, utf8Status bool) string {
	typ = cleanASCII(typ)
	if isASCII(a) {
		return typ + "; " + cleanASCII(a)
	}
	if utf8Status {
		return "utf-8; " + cleanText(a)
	}
	return "utf-8; " + utf8AddrXtext(a)
}

// origMessageID returns the Message-ID of the original's (normalized)
// header, "" when it has none fit to repeat in In-Reply-To.
func origMessageID(hdr []byte) string {
	tp := textproto.NewReader(bufio.NewReader(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("\r\n"))))
	// A malformed line ends the parse; the fields before it still count.
	h, _ := tp.ReadMIMEHeader()
	id := strings.TrimSpace(h.Get("Message-Id"))
	if len(id) < 5 || len(id) > 900 || id[0] != '<' || id[len(id)-1] != '>' ||
		!strings.Contains(id, "@") || strings.ContainsAny(id[1:len(id)-1], "<> ") {
		return ""
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] > '~' {
			return ""
		}
	}
	return id
}

// readHeader reads the original's header block from br: the lines before
// the first empty one, which is consumed (sep is its length, 0 when there
// was none). A header longer than max is cut after its last whole line
// within max.
func readHeader(br *bufio.Reader, max int64) (hdr []byte, sep int, cut bool, err error) {
	var line []byte
	for {
		frag, err := br.ReadSlice('\n')
		line = append(line, frag...)
		if int64(len(hdr)+len(line)) > max {
			return hdr, 0, true, nil
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			return append(hdr, line...), 0, false, nil
		case err != nil:
			return nil, 0, false, err
		}
		if string(line) == "\r\n" || string(line) == "\n" {
			return hdr, len(line), false, nil
		}
		hdr = append(hdr, line...)
		line = line[:0]
	}
}

// validStatus reports whether s is an RFC 3463 section 2 status code:
// class "." subject "." detail, class 2, 4 or 5, the others 1 to 3 digits.
func validStatus(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || !strings.ContainsAny(parts[0], "245") {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) < 1 || len(p) > 3 {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

// StatusFromReply returns the status code for a recipient refused with an
// SMTP reply: the reply's enhanced code (RFC 2034) when it is valid and of
// the reply's class, else the class's generic code, "2.0.0", "4.0.0" or
// "5.0.0" (RFC 3463 section 3.1). It returns "" when code is not a reply
// code of those classes; with no reply at all (the connection failed) the
// caller chooses, 4.4.1 say (section 3.5).
func StatusFromReply(code int, enhanced string) string {
	var class byte
	switch code / 100 {
	case 2:
		class = '2'
	case 4:
		class = '4'
	case 5:
		class = '5'
	default:
		return ""
	}
	if !validStatus(enhanced) || enhanced[0] != class {
		return string(class) + ".0.0"
	}
	return enhanced
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
