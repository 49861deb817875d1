package smtp

import (
	"fmt"
	"net"
	"strings"
	"unicode/utf8"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wire"
)

// maxPath is the longest reverse- or forward-path (RFC 5321 section
// 4.5.3.1.3), angle brackets included.
const maxPath = 256

// checkAddress validates a mailbox before it goes into MAIL FROM or RCPT TO.
// A refused character is shown quoted and escaped (' ', '\r'), so that a
// space or a control character reads in the message instead of vanishing.
// Anything that could end or extend the command line (CR, LF, NUL, angle
// brackets, spaces outside a quoted local part) is refused, so that an
// address taken from user input can never inject a command. It reports
// whether the address needs SMTPUTF8 (RFC 6531).
func checkAddress(addr string, nullOK bool) (utf8Needed bool, err error) {
	bad := func(why string) error {
		return mailsec.Errorf(mailsec.Data, "address", nil, "invalid address %q: %s", wire.Clip(addr), why)
	}
	if addr == "" {
		if nullOK {
			return false, nil
		}
		return false, bad("empty")
	}
	if len(addr)+2 > maxPath {
		return false, bad("longer than 254 octets (RFC 5321 section 4.5.3.1.3)")
	}
	if !utf8.ValidString(addr) {
		return false, bad("not valid UTF-8")
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		if strings.EqualFold(addr, "postmaster") && !nullOK {
			return false, nil
		}
		return false, bad("needs local-part@domain")
	}
	local, domain := addr[:at], addr[at+1:]
	if len(local) > 64 {
		return false, bad("local part longer than 64 octets (RFC 5321 section 4.5.3.1.1)")
	}
	quoted := len(local) >= 2 && local[0] == '"' && local[len(local)-1] == '"'
	for i, r := range local {
		switch {
		case r < 0x20 || r == 0x7f:
			return false, bad(fmt.Sprintf("control character %q", r))
		case r >= 0x80:
			utf8Needed = true
		case quoted && (r == '<' || r == '>'):
			// Legal in a quoted string, but a server that scans for the
			// first ">" would end the path there and read the rest as
			// parameters: refused, as no real mailbox needs it.
			return false, bad("angle bracket in quoted local part")
		case quoted:
			if r == '"' && i != 0 && i != len(local)-1 && local[i-1] != '\\' {
				return false, bad("unescaped quote in quoted local part")
			}
		case strings.ContainsRune(" <>()[],;:\\\"@", r):
			return false, bad(fmt.Sprintf("character %q not allowed in an unquoted local part", r))
		}
	}
	if !quoted && (strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..")) {
		return false, bad("dots misplaced in local part")
	}
	if strings.HasPrefix(domain, "[") {
		// RFC 5321 section 4.1.3: an IPv4 literal or "IPv6:" and an IPv6
		// address; general literals have no use in mail today.
		lit := strings.TrimSuffix(domain[1:], "]")
		v6, isV6 := strings.CutPrefix(lit, "IPv6:")
		ip := net.ParseIP(v6)
		if len(lit) != len(domain)-2 || ip == nil || isV6 == (ip.To4() != nil) || strings.Contains(v6, "%") {
			return false, bad("malformed address literal")
		}
		return utf8Needed, nil
	}
	for _, label := range strings.Split(domain, ".") {
		if label == "" || len(label) > 63 {
			return false, bad("malformed domain")
		}
		for _, r := range label {
			switch {
			case r >= 0x80:
				utf8Needed = true
			case r == '-' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
			default:
				return false, bad(fmt.Sprintf("character %q not allowed in a domain", r))
			}
		}
	}
	return utf8Needed, nil
}

// xtext encodes a DSN parameter value (RFC 3461 section 4): octets outside
// "!" to "~", and "+" and "=", become "+HH".
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			fmt.Fprintf(&b, "+%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// CheckAddress reports why addr cannot be a forward path (RCPT TO), nil
// when it can: the check Send makes, for a caller that must set one bad
// recipient aside before a transaction rather than lose the others to it.
func CheckAddress(addr string) error {
	_, err := checkAddress(addr, false)
	return err
}

// CheckLocalName reports why name cannot be the argument of EHLO or HELO
// (RFC 5321 section 4.1.1.1: a domain, in A-labels, or an address
// literal), nil when it can. Anything else could also end the command line
// and start another, so Dial refuses such an Options.LocalName before it
// connects.
func CheckLocalName(name string) error {
	for _, r := range name {
		if r >= 0x80 {
			return mailsec.Errorf(mailsec.Config, "EHLO", nil, "%q: an EHLO name is US-ASCII; give the domain's A-labels (xn--...)", name)
		}
	}
	if _, err := checkAddress("postmaster@"+name, false); err != nil || name == "" {
		return mailsec.Errorf(mailsec.Config, "EHLO", nil, "%q: not a domain name or an address literal such as [192.0.2.1]", name)
	}
	return nil
}
