package smtpd

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// recorder is an Observer that writes the events down.
type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, s)
}

func (r *recorder) Auth(s SessionInfo, mech string, ok bool) {
	if s.ID == "" || s.Conn == nil {
		r.add("auth without session info")
	}
	r.add(s.Kind.String() + " auth " + mech + map[bool]string{true: " ok", false: " failed"}[ok])
}

func (r *recorder) Message(s SessionInfo, m MessageInfo) {
	r.add(s.Kind.String() + " message " + m.Outcome.String() + map[bool]string{true: " stored", false: ""}[m.StoreTime > 0])
}

// wait returns the events once there are n of them.
func (r *recorder) wait(t *testing.T, n int) []string {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		r.mu.Lock()
		ev := slices.Clone(r.events)
		r.mu.Unlock()
		if len(ev) >= n {
			return ev
		}
	}
	t.Fatalf("only %q", r.events)
	return nil
}

// Every login and every message transfer reaches the Observer with its
// outcome, whichever way the message came (DATA, one BDAT chunk, several).
func TestObserver(t *testing.T) {
	rec := &recorder{}
	e := startServer(t, func(s *Server) {
		s.Observer = rec
		s.Limits.MaxMessageSize = 100
	})
	c := e.dial(Submission)
	c.cmd("EHLO client.test", 250)
	c.starttls()
	c.cmd("EHLO client.test", 250)
	authenticate(t, c, "PLAIN", "alice", "wrong", 535)
	authenticate(t, c, "PLAIN", "alice", "secret", 235)
	c.cmd("QUIT", 221)

	c = mxTransaction(e)
	c.cmd("DATA", 354)
	c.send("Subject: ok\r\n\r\nhi\r\n.\r\n")
	c.expect(250)
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	c.cmd("DATA", 354)
	c.send("a\nb\r\n.\r\n")
	c.expect(554)
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	c.send("BDAT 4 LAST\r\nx\r\n\r")
	c.expect(554) // a CR ending the message
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	c.send("BDAT 5 LAST\r\nx\r\n\r\n")
	c.expect(250)
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	c.send("BDAT 60\r\n" + strings.Repeat("y", 58) + "\r\n")
	c.expect(250)
	c.send("BDAT 60 LAST\r\n" + strings.Repeat("y", 58) + "\r\n")
	c.expect(552)
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	c.send("BDAT 3\r\nab\r")
	c.expect(250)
	c.conn.Close() // the rest never comes

	want := []string{
		"submission auth PLAIN failed",
		"submission auth PLAIN ok",
		"mx message accepted stored",
		"mx message content",
		"mx message content",
		"mx message accepted stored",
		"mx message size",
		"mx message transfer",
	}
	if got := rec.wait(t, len(want)); !slices.Equal(got, want) {
		t.Errorf("events\n%q\nwant\n%q", got, want)
	}
}
