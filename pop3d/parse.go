package pop3d

import (
	"bytes"
	"strings"
)

// Line limits, measured with the CRLF.
const (
	// maxCommandLine is RFC 2449 section 4's 255 octets, which raised RFC
	// 1939's 47.
	maxCommandLine = 255
	// maxSASLLine bounds a SASL response line of an AUTH exchange, which
	// is not a command and may carry more than 255 octets (large Kerberos
	// or OAuth tokens); the same 12288 octets smtpd allows (RFC 4954
	// section 4).
	maxSASLLine = 12288
)

// command is one parsed command line.
type command struct {
	verb string   // upper case
	args []string // split at single spaces
	rest string   // everything after the keyword and its space
}

// parseCommand splits a command line (without CRLF). RFC 1939 section 3:
// a case-insensitive keyword of three or four characters, then arguments
// separated by single spaces, printable ASCII only. PASS is the exception
// (section 7: its one argument may contain spaces), so its rest is kept
// verbatim and may be UTF-8.
func parseCommand(line []byte) (command, *reply) {
	for _, b := range line {
		if b < 0x20 || b == 0x7f {
			return command{}, errSyntaxChars
		}
	}
	verb, rest, hasArgs := strings.Cut(string(line), " ")
	if len(verb) < 3 || len(verb) > 4 {
		return command{}, errUnknown
	}
	for i := 0; i < len(verb); i++ {
		if c := verb[i] | 0x20; c < 'a' || c > 'z' {
			return command{}, errUnknown
		}
	}
	cmd := command{verb: strings.ToUpper(verb), rest: rest}
	if !hasArgs || cmd.verb == "PASS" {
		if hasArgs && rest == "" {
			return command{}, errSyntax
		}
		return cmd, nil
	}
	for _, a := range strings.Split(rest, " ") {
		if a == "" {
			return command{}, errSyntax
		}
		for i := 0; i < len(a); i++ {
			if a[i] > 0x7e {
				return command{}, errSyntax
			}
		}
		cmd.args = append(cmd.args, a)
	}
	return cmd, nil
}

// describe appends to dst what the log may say of a command line
// (srvconn.Protocol.Describe): a known verb with its arguments (a user
// name, message numbers), but for PASS none and for AUTH only the
// mechanism, never the password or the initial response.
func describe(dst, line []byte) []byte {
	verb, arg, _ := bytes.Cut(line, []byte{' '})
	v := ""
	for known := range commands {
		if bytes.EqualFold(verb, []byte(known)) {
			v = known
		}
	}
	switch v {
	case "":
		return append(dst, '?')
	case "PASS":
		arg = nil
	case "AUTH":
		arg, _, _ = bytes.Cut(arg, []byte{' '})
	}
	dst = append(dst, v...)
	if len(arg) > 0 {
		dst = append(append(dst, ' '), arg...)
	}
	return dst
}

// msgNumber parses a message-number argument: a decimal number from 1 to
// n, no sign, no leading zeros beyond a plain digit string (RFC 1939
// section 5).
func msgNumber(arg string, n int) (int, *reply) {
	if arg == "" || len(arg) > 10 {
		return 0, errSyntax
	}
	v := 0
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		if c < '0' || c > '9' {
			return 0, errSyntax
		}
		v = v*10 + int(c-'0')
	}
	if v < 1 || v > n {
		return 0, errNoSuchMsg
	}
	return v, nil
}
