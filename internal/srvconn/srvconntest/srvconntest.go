// Package srvconntest holds what the tests of the servers built on
// srvconn share: the hostile shapes of a command line. It is meant only
// for tests.
package srvconntest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
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

// Log captures a server's log as JSON lines, safe for the concurrent
// writes of sessions.
type Log struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Logger returns a logger writing to l at every level, mailsec's trace
// included, so that a test of what the log must not hold covers them all.
func (l *Log) Logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(l, &slog.HandlerOptions{Level: mailsec.LevelTrace}))
}

// Write implements io.Writer for the handler.
func (l *Log) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *Log) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Lines returns the records logged with message msg, in order.
func (l *Log) Lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range bytes.Split([]byte(l.String()), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var rec map[string]any
		if err := json.Unmarshal(line, &rec); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if rec["msg"] == msg {
			out = append(out, rec)
		}
	}
	return out
}

// Refusal is what a "refused" log line says; From is the transaction's
// sender where the protocol names one ("<a@b>").
type Refusal struct{ Command, Code, Enh, From string }

// Refusals returns the "refused" lines of the log, failing t unless each
// is at INFO and names the client's address.
func (l *Log) Refusals(t *testing.T) []Refusal {
	t.Helper()
	var out []Refusal
	for _, rec := range l.Lines(t, "refused") {
		if rec["level"] != "INFO" || rec["remote"] == nil || rec["remote"] == "" {
			t.Errorf("refusal logged without level INFO and the client's address: %v", rec)
		}
		cmd, _ := rec["command"].(string)
		code, _ := rec["code"].(string)
		enh, _ := rec["enh"].(string)
		from, _ := rec["from"].(string)
		out = append(out, Refusal{cmd, code, enh, from})
	}
	return out
}

// Expect fails t unless the log's refusals are want, in order, and unless
// none of secrets appears anywhere in the log.
func (l *Log) Expect(t *testing.T, want []Refusal, secrets ...string) {
	t.Helper()
	got := l.Refusals(t)
	if len(got) != len(want) {
		t.Fatalf("%d refusals logged, want %d:\n%v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("refusal %d logged as %+v, want %+v", i, got[i], want[i])
		}
	}
	all := l.String()
	for _, s := range secrets {
		if strings.Contains(all, s) {
			t.Errorf("the log holds %q:\n%s", s, all)
		}
	}
}
