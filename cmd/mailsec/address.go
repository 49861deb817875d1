package main

import (
	"errors"
	"fmt"
	"mime"
	"net/mail"
	"strings"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/smtp"
)

// nameAddr is an address as a person types it on the command line: a bare
// addr-spec, an angle-addr "<alice@example.com>" or a name-addr
// "Alice <alice@example.com>" (RFC 5322 section 3.4).
type nameAddr struct {
	// name is the display name, decoded; "" when none was given.
	name string
	// addr is the addr-spec as typed, a quoted local part still quoted,
	// so that it goes into MAIL FROM or RCPT TO unchanged.
	addr string
}

// parseMailbox reads one address given with flag and checks its addr-spec
// as MAIL FROM and RCPT TO will. The addr-spec is taken from between the
// last "<" and the final ">": no address smtp accepts has an angle bracket
// in it, so the last "<" is where it starts. net/mail is not used for the
// addr-spec: it drops the quotes of a quoted local part and refuses IPv6
// address literals.
func parseMailbox(flag, s string) (nameAddr, error) {
	bad := func(format string, args ...any) error {
		return mailsec.Errorf(mailsec.Data, flag, nil, "invalid address %q: %s", s, fmt.Sprintf(format, args...))
	}
	t := strings.TrimSpace(s)
	var m nameAddr
	if !strings.HasSuffix(t, ">") {
		m.addr = t
	} else {
		lt := strings.LastIndexByte(t, '<')
		if lt < 0 {
			return m, bad("'>' without '<'")
		}
		m.addr = t[lt+1 : len(t)-1]
		name, err := displayName(strings.TrimSpace(t[:lt]))
		if err != nil {
			return m, bad("%s", err)
		}
		m.name = name
	}
	if m.addr == "" {
		return m, bad("empty")
	}
	if err := smtp.CheckAddress(m.addr); err != nil {
		var me *mailsec.Error
		if errors.As(err, &me) {
			return m, mailsec.Errorf(mailsec.Data, flag, nil, "%s", me.Detail)
		}
		return m, err
	}
	return m, nil
}

// parseMailboxes reads the addresses given with flag, each on its own.
func parseMailboxes(flag string, list []string) ([]nameAddr, error) {
	out := make([]nameAddr, 0, len(list))
	for _, s := range list {
		m, err := parseMailbox(flag, s)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// addrs are the addr-specs of ms, for the envelope.
func addrs(ms []nameAddr) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.addr
	}
	return out
}

// addrSpec is the addr-spec of an address net/mail parsed, its local part
// quoted again when it needs it: net/mail unquotes "bob smith"@example.com
// into a form no SMTP command may carry.
func addrSpec(a *mail.Address) string {
	s := (&mail.Address{Address: a.Address}).String()
	return strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
}

// displayName decodes the phrase before an angle-addr (RFC 5322 section
// 3.2.5): a quoted string, or words with RFC 2047 encoded words among
// them. The result goes into a header, so control characters (a CR or LF
// would start a header of its own) are refused, as are the specials a
// phrase cannot hold unquoted.
func displayName(p string) (string, error) {
	var name string
	if len(p) >= 2 && p[0] == '"' && p[len(p)-1] == '"' {
		var b strings.Builder
		for i := 1; i < len(p)-1; i++ {
			c := p[i]
			switch {
			case c == '\\' && i+1 < len(p)-1:
				i++
				c = p[i]
			case c == '"' || c == '\\':
				return "", fmt.Errorf("character %q in the display name must be escaped with '\\'", rune(c))
			}
			b.WriteByte(c)
		}
		name = b.String()
	} else {
		if i := strings.IndexAny(p, "()<>[]:;@\\,\""); i >= 0 {
			return "", fmt.Errorf("character %q in the display name needs the name in double quotes", rune(p[i]))
		}
		dec, err := new(mime.WordDecoder).DecodeHeader(p)
		if err != nil {
			return "", fmt.Errorf("the display name's encoded word cannot be decoded: %v", err)
		}
		name = dec
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("control character %q in the display name", r)
		}
	}
	return name, nil
}

// header is the mailbox as a From or To field writes it: the addr-spec,
// after the display name when there is one, quoted or RFC 2047-encoded as
// the name needs (RFC 5322 section 3.4, RFC 2047 section 5).
func (m nameAddr) header() string {
	if m.name == "" {
		return m.addr
	}
	return phrase(m.name) + " <" + m.addr + ">"
}

// phrase writes a display name: as it is when it is atoms and spaces, as
// a quoted string when it has other US-ASCII characters, as encoded words
// when it is not US-ASCII.
func phrase(name string) string {
	atoms := true
	for _, r := range name {
		switch {
		case r >= 0x80:
			return mime.QEncoding.Encode("utf-8", name)
		case r == ' ' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' ||
			strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r):
		default:
			atoms = false
		}
	}
	if atoms {
		return name
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `"`
}
