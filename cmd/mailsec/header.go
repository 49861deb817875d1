package main

import (
	"bufio"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strings"

	"github.com/mailsec/mailsec"
)

// headerEdit is what send changes in the header of a message it reads
// from stdin, as msmtp and sendmail do.
type headerEdit struct {
	// fields are the --header fields; each replaces the message's fields
	// of the same name.
	fields []headerField
	// cc are the --cc addresses, merged into the message's Cc field.
	cc []nameAddr
	// from is written as the From field when the message has none; the
	// zero value writes none.
	from nameAddr
	// readRcpts collects the addresses of To, Cc and Bcc (sendmail's -t).
	readRcpts bool
}

// headerFacts is what send learns from the header of a message it reads.
type headerFacts struct {
	// rcpts are the addresses of the To, Cc and Bcc fields, with
	// headerEdit.readRcpts.
	rcpts []string
	// from is the value of the From field, "" when there is none.
	from string
}

// headerField is one header field given on the command line.
type headerField struct{ name, value string }

// parseHeaderField checks a --header value, "Name: value": a field name
// of printable US-ASCII without ':' (RFC 5322 section 2.2), a value with
// no control character but HTAB. A CR or LF would end the field and start
// another, so that a value taken from user input could add any header
// (the injection RFC 5322 section 2.2's unfolding invites); non-ASCII
// would need SMTPUTF8 or RFC 2047 encoding, which --subject does.
func parseHeaderField(s string) (headerField, error) {
	bad := func(why string) error {
		return usageError{fmt.Errorf("--header %q: %s", s, why)}
	}
	name, value, ok := strings.Cut(s, ":")
	if !ok || name == "" {
		return headerField{}, bad("needs Name: value")
	}
	for _, r := range name {
		if r < 33 || r > 126 {
			return headerField{}, bad(fmt.Sprintf("character %q not allowed in a field name (RFC 5322 section 2.2)", r))
		}
	}
	value = strings.TrimSpace(value)
	for _, r := range value {
		switch {
		case r == '\t':
		case r < 0x20 || r == 0x7f:
			return headerField{}, bad(fmt.Sprintf("control character %q in the value: a header field is one line", r))
		case r >= 0x80:
			return headerField{}, bad(fmt.Sprintf("character %q is not US-ASCII: encode it (RFC 2047), or use --subject for the subject", r))
		}
	}
	return headerField{name: name, value: value}, nil
}

// fromField is the sender a From field names, for a message that is all
// send has to go by (git send-email, PHP's mail()). net/mail reads the
// field first, comments and encoded words included; what it cannot read
// (an IPv6 address literal) is taken as typed.
func fromField(value string) (nameAddr, error) {
	if a, err := mail.ParseAddress(value); err == nil {
		value = addrSpec(a)
	}
	return parseMailbox("From field", value)
}

// parseHeaderFields checks every --header value.
func parseHeaderFields(list []string) ([]headerField, error) {
	out := make([]headerField, 0, len(list))
	for _, s := range list {
		f, err := parseHeaderField(s)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// editMessage copies msg into a private temporary file with its header
// edited (see editHeader) and returns the file at its start.
func editMessage(msg io.Reader, e headerEdit) (headerFacts, *os.File, error) {
	var facts headerFacts
	out, err := tempMessage("read message", "mailsec-msg-*", func(f *os.File) (err error) {
		facts, err = editHeader(f, msg, e)
		return err
	})
	return facts, out, err
}

// editHeader copies msg to w and returns what its header says. On the way
// the Bcc fields are dropped, so that blind copies stay blind (RFC 5322
// section 3.6.3 lets the sender remove them; msmtp does by default); the
// fields e.fields replace go; a Cc field takes e.cc; and at the end of the
// header come e.fields, then From when the message lacks it (RFC 5322
// section 3.6 requires it of every message; msmtp adds it too). Date and
// Message-ID are left to the submission server (RFC 6409 sections 8.2,
// 8.3).
func editHeader(w io.Writer, msg io.Reader, e headerEdit) (headerFacts, error) {
	br := bufio.NewReader(msg)
	bw := bufio.NewWriter(w)
	var (
		facts   headerFacts
		field   strings.Builder
		drop    bool
		ccs     []string
		hasFrom bool
		endsNL  = true
		blank   string // the line ending the header; "" at EOF
	)
	replaced := map[string]bool{}
	for _, f := range e.fields {
		replaced[strings.ToLower(f.name)] = true
	}
	// flush judges the field just read in full.
	flush := func() error {
		name, value, ok := strings.Cut(field.String(), ":")
		field.Reset()
		if !ok {
			return nil
		}
		value = strings.TrimSpace(value)
		key := strings.ToLower(strings.TrimSpace(name))
		if key == "from" {
			hasFrom, facts.from = true, value
		}
		if key == "cc" && len(e.cc) > 0 {
			ccs = append(ccs, value)
		}
		// Only -t parses the address fields: cron writes "To: root", which
		// is no address but must not stop the message.
		if e.readRcpts && (key == "to" || key == "cc" || key == "bcc") {
			list, err := mail.ParseAddressList(value)
			if err != nil {
				return mailsec.Errorf(mailsec.Data, "read message", err, "cannot parse the %s header", strings.TrimSpace(name))
			}
			for _, a := range list {
				facts.rcpts = append(facts.rcpts, addrSpec(a))
			}
		}
		return nil
	}
	for {
		line, err := br.ReadString('\n')
		if line == "" && err != nil {
			break
		}
		trimmed := strings.TrimRight(line, "\r\n")
		if trimmed == "" {
			if ferr := flush(); ferr != nil {
				return facts, ferr
			}
			blank = line
			break
		}
		if line[0] != ' ' && line[0] != '\t' {
			if ferr := flush(); ferr != nil {
				return facts, ferr
			}
			name, _, _ := strings.Cut(trimmed, ":")
			name = strings.ToLower(strings.TrimSpace(name))
			drop = name == "bcc" || replaced[name] || (name == "cc" && len(e.cc) > 0)
		}
		field.WriteString(trimmed)
		if !drop {
			bw.WriteString(line)
			endsNL = strings.HasSuffix(line, "\n")
		}
		if err != nil {
			if ferr := flush(); ferr != nil {
				return facts, ferr
			}
			break
		}
	}
	for _, m := range e.cc {
		ccs = append(ccs, m.header())
	}
	var add []headerField
	if len(e.cc) > 0 {
		add = append(add, headerField{"Cc", strings.Join(ccs, ", ")})
	}
	for _, f := range e.fields {
		add = append(add, f)
		if strings.EqualFold(f.name, "from") {
			facts.from = f.value
		}
	}
	if !hasFrom && !replaced["from"] && e.from.addr != "" {
		add = append(add, headerField{"From", e.from.header()})
		facts.from = e.from.header()
	}
	if len(add) > 0 && !endsNL {
		bw.WriteString("\r\n")
	}
	for _, f := range add {
		fmt.Fprintf(bw, "%s: %s\r\n", f.name, f.value)
	}
	bw.WriteString(blank)
	if _, err := io.Copy(bw, br); err != nil {
		return facts, mailsec.Errorf(mailsec.Data, "read message", err, "cannot read the message")
	}
	if err := bw.Flush(); err != nil {
		return facts, mailsec.Errorf(mailsec.Data, "read message", err, "cannot write the message")
	}
	return facts, nil
}
