// Package srvconntest holds what the tests of the servers built on
// srvconn share: the hostile shapes of a command line. It is meant only
// for tests.
package srvconntest

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// BareLines returns, by name, the ways to spoil a command line with a
// bare LF or a bare CR, built from the lines first and second (without
// CRLF); each ends in CRLF. A server must refuse each as one line with one
// reply and run no part of it, since only CRLF ends a line (RFC 5321
// section 2.3.8, RFC 1939 section 3): taking a bare LF for a line end is
// what the SMTP smuggling attacks exploit.
func BareLines(first, second string) map[string]string {
	return map[string]string{
		"LF mid-line": first + "\n" + second + "\r\n",
		"LF at start": "\n" + first + "\r\n",
		"LF LF":       first + "\n\n\r\n",
		"LF CR LF":    first + "\n\r\n",
		"CR mid-line": first + "\r" + second + "\r\n",
		"CR at start": "\r" + first + "\r\n",
		"CR CR LF":    first + "\r\r\n",
	}
}

// BareLinesOf is BareLines for each pair of lines, named "first/variant".
func BareLinesOf(pairs [][2]string) map[string]string {
	all := map[string]string{}
	for _, p := range pairs {
		for name, line := range BareLines(p[0], p[1]) {
			all[p[0]+"/"+name] = line
		}
	}
	return all
}

// Unanswered fails t if anything arrives on c (read through r) within d:
// a line without its CRLF has not ended and must not be answered. It
// leaves c's read deadline at 20 seconds from now.
func Unanswered(t *testing.T, c net.Conn, r *bufio.Reader, d time.Duration) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(d))
	if b, err := r.Peek(1); err == nil {
		t.Fatalf("answered a line without CRLF: %q", b)
	}
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
}
