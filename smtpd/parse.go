package smtpd

import (
	"bytes"
	"net/netip"
	"strings"
)

// command is one parsed command line.
type command struct {
	verb string // upper case
	arg  string // the rest, after one space
}

// parseCommand splits a command line (CRLF removed) into verb and argument.
// Control characters anywhere are refused: they have no business in SMTP
// commands (RFC 5321 section 4.1.1) and are how header injection starts.
// Invalid UTF-8 is left to the commands that take addresses, which answer
// it with the address status codes.
func parseCommand(line []byte) (command, *reply) {
	for _, c := range line {
		if c < ' ' && c != '\t' || c == 0x7f {
			return command{}, errSyntaxChars
		}
	}
	verb, arg, _ := bytes.Cut(line, []byte{' '})
	if len(verb) == 0 || len(verb) > 16 {
		return command{}, errUnknown
	}
	return command{verb: upperVerb(verb), arg: string(arg)}, nil
}

// verbs are the commands the session knows, so that naming one costs no
// allocation.
var verbs = []string{"EHLO", "HELO", "STARTTLS", "AUTH", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT",
	"VRFY", "EXPN", "HELP"}

// upperVerb returns verb in upper case.
func upperVerb(verb []byte) string {
	if v := knownVerb(verb); v != "" {
		return v
	}
	return strings.ToUpper(string(verb))
}

// knownVerb returns the one of verbs that verb names, whatever its case,
// or "".
func knownVerb(verb []byte) string {
	for _, v := range verbs {
		if len(v) == len(verb) && bytes.EqualFold(verb, []byte(v)) {
			return v
		}
	}
	return ""
}

// describe appends to dst what the log may say of a command line
// (srvconn.Protocol.Describe): a known verb and, for the commands whose
// argument names a host, an address or a size, that argument; for AUTH
// only the mechanism, never the initial response.
func describe(dst, line []byte) []byte {
	verb, arg, _ := bytes.Cut(line, []byte{' '})
	v := knownVerb(verb)
	switch v {
	case "":
		return append(dst, '?')
	case "AUTH":
		arg, _, _ = bytes.Cut(arg, []byte{' '})
	case "EHLO", "HELO", "MAIL", "RCPT", "BDAT", "VRFY", "EXPN":
	default:
		arg = nil
	}
	dst = append(dst, v...)
	if len(arg) > 0 {
		dst = append(append(dst, ' '), arg...)
	}
	return dst
}

// param is one ESMTP parameter of MAIL or RCPT (RFC 5321 section 4.1.2
// esmtp-param): a keyword with an optional value.
type param struct {
	key, value string // key upper case
	hasValue   bool
}

// pathArg is a parsed "FROM:<path> params" or "TO:<path> params".
type pathArg struct {
	addr   string // the mailbox, without the source route; "" for <>
	local  string
	domain string // "" for <> and <postmaster>
	params []param
}

// parsePathArg parses arg, which must start with prefix ("FROM:" or "TO:",
// case-insensitive). It checks syntax only; the caller decides about null
// paths, UTF-8 and domains.
func parsePathArg(arg, prefix string) (pathArg, bool) {
	var p pathArg
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return p, false
	}
	// A space after the colon is a common client bug that RFC 5321 does not
	// allow but nothing is gained by refusing it.
	rest := strings.TrimLeft(arg[len(prefix):], " ")
	if rest == "" || rest[0] != '<' {
		return p, false
	}
	end := closeAngle(rest)
	if end < 0 {
		return p, false
	}
	path, params := rest[1:end], rest[end+1:]
	if len(path) > 254 { // RFC 5321 section 4.5.3.1.3: 256 with the brackets
		return p, false
	}
	// A source route "@a,@b:" must be accepted and ignored (RFC 5321
	// section 4.1.2 and appendix C).
	if strings.HasPrefix(path, "@") {
		i := strings.IndexByte(path, ':')
		if i < 0 {
			return p, false
		}
		path = path[i+1:]
	}
	if path != "" {
		at := strings.LastIndexByte(path, '@')
		switch {
		case at < 0 && strings.EqualFold(path, "postmaster"):
			p.local = path // RFC 5321 section 4.1.1.3
		case at < 0:
			return p, false
		default:
			p.local, p.domain = path[:at], path[at+1:]
			if !validLocal(p.local) || !validDomain(p.domain) {
				return p, false
			}
		}
		p.addr = path
	}
	if params != "" && params[0] != ' ' {
		return p, false
	}
	for _, f := range strings.Fields(params) {
		k, v, has := strings.Cut(f, "=")
		if !validKeyword(k) || has && v == "" {
			return p, false
		}
		p.params = append(p.params, param{key: strings.ToUpper(k), value: v, hasValue: has})
	}
	return p, true
}

// closeAngle returns the index of the '>' ending the path that starts at
// s[0] == '<', skipping quoted strings where '>' may appear.
func closeAngle(s string) int {
	quoted := false
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case quoted && c == '\\':
			i++
		case c == '"':
			quoted = !quoted
		case !quoted && c == '>':
			return i
		}
	}
	return -1
}

// validLocal checks a Local-part: Dot-string or Quoted-string (RFC 5321
// section 4.1.2), with UTF-8 allowed as RFC 6531 section 3.3 extends them;
// whether UTF-8 is permitted is decided by the caller. At most 64 octets
// (section 4.5.3.1.1).
func validLocal(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	if s[0] == '"' {
		if len(s) < 2 || s[len(s)-1] != '"' {
			return false
		}
		for i := 1; i < len(s)-1; i++ {
			switch c := s[i]; {
			case c == '\\':
				i++
				if i >= len(s)-1 || s[i] < ' ' || s[i] > '~' {
					return false
				}
			case c == '"' || c < ' ' || c == 0x7f:
				return false
			}
		}
		return true
	}
	// Dot-string: atoms separated by single dots, none empty.
	if s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != '.' && c < 0x80 && !isAtext(c) {
			return false
		}
	}
	return true
}

// isAtext is RFC 5322 section 3.2.3 atext.
func isAtext(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// validDomain checks a Domain or address-literal (RFC 5321 section 4.1.2),
// with U-labels allowed (RFC 6531 section 3.3); at most 255 octets.
func validDomain(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	if s[0] == '[' {
		valid, _ := addressLiteralKind(s)
		return valid
	}
	for rest := s; ; {
		label, more, dot := strings.Cut(rest, ".")
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if c < 0x80 && !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
				return false
			}
		}
		if !dot {
			return true
		}
		rest = more
	}
}

// addressLiteralKind checks an address literal by RFC 5321 section 4.1.3:
// "[" IPv4 "]", "[IPv6:" IPv6 "]", or "[" tag ":" dcontent "]" (the
// General-address-literal); ip reports one of the first two.
func addressLiteralKind(s string) (valid, ip bool) {
	if len(s) < 3 || s[0] != '[' || s[len(s)-1] != ']' {
		return false, false
	}
	inner := s[1 : len(s)-1]
	tag, rest, general := strings.Cut(inner, ":")
	if !general {
		a, err := netip.ParseAddr(inner)
		return err == nil && a.Is4(), true
	}
	if strings.EqualFold(tag, "IPv6") {
		a, err := netip.ParseAddr(rest)
		return err == nil && a.Is6() && a.Zone() == "", true
	}
	// Standardized-tag is an Ldh-str; dcontent is %d33-90 / %d94-126.
	if tag == "" || rest == "" || !validKeyword(tag) || tag[len(tag)-1] == '-' {
		return false, false
	}
	for i := 0; i < len(rest); i++ {
		if c := rest[i]; c < '!' || c > '~' || c == '[' || c == ']' || c == '\\' {
			return false, false
		}
	}
	return true, false
}

// validKeyword checks an esmtp-keyword: ALPHA / DIGIT then ALPHA / DIGIT / "-".
func validKeyword(k string) bool {
	if k == "" || k[0] == '-' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// validHelo checks an EHLO/HELO argument: a domain or an IP address
// literal (RFC 5321 section 4.1.1.1). It ends up in Received headers, so
// nothing else is let through, not even a General-address-literal, whose
// dcontent may hold ";", "(" or ")" that would change how the header
// parses (section 4.4).
func validHelo(s string) bool {
	if s == "" || len(s) > 255 || !isASCII(s) {
		return false
	}
	if s[0] == '[' {
		valid, ip := addressLiteralKind(s)
		return valid && ip
	}
	return validDomain(s)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
