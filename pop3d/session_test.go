package pop3d

import (
	"bufio"
	"encoding/base64"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/sasl"
)

const (
	msgDots = "Subject: dots\r\n\r\n.\r\n..two\r\n.leading\r\nend\r\n"
	msgLong = "Subject: long\r\nX: y\r\n\r\nline 1\r\nline 2\r\nline 3\r\n"
)

// Before TLS neither USER nor SASL is offered or accepted; after STLS
// they are, and STLS is not (RFC 2595 section 4; no credentials in the
// clear, Domino's rule).
func TestCredentialsOnlyUnderTLS(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(STLS)
	capa := c.multi("CAPA")
	if !strings.Contains(capa, "STLS\r\n") || strings.Contains(capa, "USER") || strings.Contains(capa, "SASL") {
		t.Errorf("CAPA before TLS:\n%s", capa)
	}
	for _, cmd := range []string{"USER alice", "PASS secret", "AUTH PLAIN AGFsaWNlAHNlY3JldA=="} {
		if r := c.cmdErr(cmd); !strings.Contains(r, "STLS") {
			t.Errorf("%s before TLS: %q", cmd, r)
		}
	}
	c.stls()
	capa = c.multi("CAPA")
	if strings.Contains(capa, "STLS") || !strings.Contains(capa, "USER\r\n") ||
		!strings.Contains(capa, "SASL SCRAM-SHA-256 PLAIN LOGIN\r\n") {
		t.Errorf("CAPA under TLS:\n%s", capa)
	}
	c.cmdErr("STLS") // no STLS inside TLS
	c.cmdOK("USER alice")
	c.cmdOK("PASS secret")
	if capa = c.multi("CAPA"); strings.Contains(capa, "USER") || strings.Contains(capa, "SASL") {
		t.Errorf("CAPA in TRANSACTION:\n%s", capa)
	}
	c.cmdOK("QUIT")
}

// Plaintext pipelined behind STLS must never run after the handshake
// (CVE-2011-0411 class): the server closes the connection instead.
func TestPipelinedAfterSTLSNotExecuted(t *testing.T) {
	e := startServer(t, nil)
	e.deliver("alice", msgDots)
	c := e.dial(STLS)
	c.send("STLS\r\nUSER alice\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n")
	if l, _ := c.line(); strings.HasPrefix(l, "+OK") {
		t.Fatalf("STLS accepted with plaintext behind it: %q", l)
	}
	c.expectClosed()
	if ms, _ := e.store.List("alice"); len(ms) != 1 {
		t.Errorf("%d messages left", len(ms))
	}
}

// A USER given before STLS does not survive it (RFC 2595 section 4).
func TestStateResetAfterSTLS(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(STLS)
	c.cmdErr("USER alice")
	c.stls()
	c.cmdErr("PASS secret") // no USER under TLS yet
	c.cmdOK("USER alice")
	c.cmdOK("PASS secret")
}

// RETR sends the message byte-stuffed and byte-exact, TOP the header and
// n body lines; DELE only marks, RSET unmarks, and only QUIT deletes.
func TestRetrieveDeleteOnQuitOnly(t *testing.T) {
	e := startServer(t, nil)
	e.deliver("alice", msgDots)
	c := e.login("alice")
	if r := c.cmdOK("STAT"); r != "+OK 1 "+itoa(len(msgDots)) {
		t.Errorf("STAT: %q", r)
	}
	if got := c.multi("RETR 1"); got != msgDots {
		t.Errorf("RETR: %q", got)
	}
	uidl := c.multi("UIDL")
	one := c.cmdOK("UIDL 1")
	if "+OK "+strings.TrimSuffix(uidl, "\r\n") != one {
		t.Errorf("UIDL %q vs %q", uidl, one)
	}
	if l := c.multi("LIST"); l != "1 "+itoa(len(msgDots))+"\r\n" {
		t.Errorf("LIST: %q", l)
	}
	c.cmdOK("DELE 1")
	c.cmdErr("RETR 1")
	c.cmdErr("DELE 1")
	c.cmdErr("LIST 1")
	if l := c.multi("LIST"); l != "" {
		t.Errorf("LIST after DELE: %q", l)
	}
	c.cmdOK("RSET")
	c.cmdOK("LIST 1")
	c.cmdOK("DELE 1")
	c.conn.Close() // dropped: nothing deleted
	waitUnlocked(t, e, "alice")
	if ms, _ := e.store.List("alice"); len(ms) != 1 {
		t.Fatalf("dropped connection deleted mail: %d left", len(ms))
	}
	e.deliver("alice", msgLong)
	c = e.login("alice")
	uids := c.multi("UIDL")
	if !strings.Contains(uids, strings.TrimPrefix(one, "+OK 1 ")+"\r\n") {
		t.Errorf("UIDL not stable: %q then %q", one, uids)
	}
	n := "1"
	if strings.Contains(c.multi("TOP 1 0"), "dots") {
		n = "2"
	}
	if got := c.multi("TOP " + n + " 2"); got != "Subject: long\r\nX: y\r\n\r\nline 1\r\nline 2\r\n" {
		t.Errorf("TOP 2: %q", got)
	}
	if got := c.multi("TOP " + n + " 0"); got != "Subject: long\r\nX: y\r\n\r\n" {
		t.Errorf("TOP 0: %q", got)
	}
	c.cmdErr("TOP " + n + " -1")
	c.cmdErr("RETR 3")
	c.cmdErr("RETR 0")
	c.cmdOK("DELE " + n)
	c.cmdOK("QUIT")
	if _, alive := c.line(); alive {
		t.Error("still open after QUIT")
	}
	ms, _ := e.store.List("alice")
	if len(ms) != 1 {
		t.Fatalf("%d left after QUIT", len(ms))
	}
	if b, _ := os.ReadFile(ms[0].Path); string(b) != msgDots {
		t.Errorf("wrong message deleted; left %q", b)
	}
}

// waitUnlocked waits until the server noticed a dropped session.
func waitUnlocked(t *testing.T, e *testEnv, user string) {
	t.Helper()
	for i := 0; i < 200; i++ {
		if unlock, err := e.store.Lock(user); err == nil {
			unlock()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("maildrop still locked")
}

func itoa(n int) string { return strconv.Itoa(n) }

// A second session on the same maildrop gets [IN-USE] (RFC 2449 section
// 8.1.2) and may log in once the first one ended.
func TestTwoSessionsOneMaildrop(t *testing.T) {
	e := startServer(t, nil)
	e.deliver("alice", msgDots)
	a := e.login("alice")
	b := e.dial(POP3S)
	b.cmdOK("USER alice")
	if r := b.cmdErr("PASS secret"); !strings.HasPrefix(r, "-ERR [IN-USE]") {
		t.Errorf("second session: %q", r)
	}
	a.cmdOK("QUIT")
	b.cmdOK("USER alice")
	b.cmdOK("PASS secret")
	b.cmdOK("STAT")
}

// PLAIN, LOGIN and SCRAM-SHA-256 with the sasl package's client.
func TestSASL(t *testing.T) {
	e := startServer(t, nil)
	for _, mech := range []string{"PLAIN", "LOGIN", "SCRAM-SHA-256"} {
		for _, ir := range []bool{true, false} {
			c := e.dial(POP3S)
			authenticate(t, c, mech, "alice", "secret", ir, "+OK")
			c.cmdOK("STAT")
			c.cmdOK("QUIT")
		}
	}
	c := e.dial(POP3S)
	authenticate(t, c, "SCRAM-SHA-256", "alice", "wrong", false, "-ERR [AUTH]")
	c.cmdErr("AUTH CRAM-MD5")
	c.send("AUTH PLAIN\r\n")
	if l, _ := c.line(); l != "+ " {
		t.Errorf("empty challenge: %q", l)
	}
	c.send("*\r\n")
	c.err()
}

// Failed logins are answered more and more slowly, then the session ends.
func TestFailedLoginBackOff(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.AuthFailureDelay = 50 * time.Millisecond })
	c := e.dial(POP3S)
	start := time.Now()
	for i := 0; i < 2; i++ {
		c.cmdOK("USER alice")
		if r := c.cmdErr("PASS nope"); !strings.HasPrefix(r, "-ERR [AUTH]") {
			t.Errorf("%q", r)
		}
	}
	c.cmdOK("USER alice")
	c.send("PASS nope\r\n")
	c.expectClosed()
	if d := time.Since(start); d < 350*time.Millisecond {
		t.Errorf("three failures took only %v (want 50+100+200ms)", d)
	}
}

// authenticate runs mech with the sasl package's client.
func authenticate(t *testing.T, c *client, mech, user, password string, initial bool, want string) {
	t.Helper()
	cl, err := sasl.NewClient(mech, sasl.Credentials{Username: user, Password: password})
	if err != nil {
		t.Fatal(err)
	}
	st := c.conn.(interface{ ConnectionState() tlsState }).ConnectionState()
	ir, err := cl.Start(sasl.ConnState{TLS: &st})
	if err != nil {
		t.Fatal(err)
	}
	line := "AUTH " + mech
	if ir != nil && initial {
		line += " " + encode(ir)
	}
	c.send(line + "\r\n")
	pending := ir != nil && !initial
	for {
		l, _ := c.line()
		if !strings.HasPrefix(l, "+ ") {
			if !strings.HasPrefix(l, want) {
				t.Fatalf("%s: want %q, got %q", mech, want, l)
			}
			return
		}
		chal, err := base64.StdEncoding.DecodeString(l[2:])
		if err != nil {
			t.Fatal(err)
		}
		var resp []byte
		if pending {
			resp, pending = ir, false
		} else if resp, err = cl.Next(chal); err != nil {
			t.Fatalf("%s client: %v", mech, err)
		}
		c.send(base64.StdEncoding.EncodeToString(resp) + "\r\n")
	}
}

func encode(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// A 10 MiB line is consumed without being buffered and refused; the
// session goes on.
func TestHugeLine(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(STLS)
	go c.conn.Write([]byte("NOOP " + strings.Repeat("x", 10<<20) + "\r\n"))
	if r := c.err(); !strings.Contains(r, "too long") {
		t.Errorf("%q", r)
	}
	c.multi("CAPA")
	c.cmdErr(strings.Repeat("A", 300)) // over 255 octets but short enough to buffer
}

// A client sending a byte at a time does not keep the session alive: the
// idle timeout covers the whole line.
func TestSlowlorisCutOff(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.IdleTimeout = 300 * time.Millisecond })
	c := e.dial(STLS)
	start := time.Now()
	go func() {
		for i := 0; i < 20; i++ {
			if _, err := c.conn.Write([]byte("N")); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	c.expectClosed()
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("trickling client kept for %v", d)
	}
}

// An idle logged-in session is closed and deletes nothing.
func TestIdleTimeoutDeletesNothing(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.IdleTimeout = 200 * time.Millisecond })
	e.deliver("alice", msgDots)
	c := e.login("alice")
	c.cmdOK("DELE 1")
	if r := c.err(); !strings.Contains(r, "Autologout") {
		t.Errorf("%q", r)
	}
	c.expectClosed()
	waitUnlocked(t, e, "alice")
	if ms, _ := e.store.List("alice"); len(ms) != 1 {
		t.Errorf("%d left", len(ms))
	}
}

// Commands must end in CRLF (a bare LF does not end one: the line goes on
// to its CRLF and is refused); state-bound commands are refused out of
// state; many errors end the session.
func TestHostileCommands(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(STLS)
	c.cmdErr("STAT")
	c.cmdErr("RETR 1")
	c.send("CAPA\nCAPA\r\n")
	c.err()
	c.cmdErr("CAPA\x00")
	c.cmdErr("XYZZY")
	c.send(strings.Repeat("BOGUS\r\n", 15))
	c.expectClosed()
}

// Shutdown answers idle sessions at once and deletes nothing.
func TestShutdown(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.IdleTimeout = time.Minute })
	e.deliver("alice", msgDots)
	c := e.login("alice")
	c.cmdOK("DELE 1")
	done := make(chan error)
	go func() { done <- e.srv.Shutdown(t.Context()) }()
	if r := c.err(); !strings.Contains(r, "[SYS/TEMP]") {
		t.Errorf("%q", r)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ms, _ := e.store.List("alice"); len(ms) != 1 {
		t.Errorf("%d left", len(ms))
	}
	if _, err := os.Stat(filepath.Join(e.store.Root(), "alice", "new")); err != nil {
		t.Error(err)
	}
}

// Connections over MaxPerIP are turned away with [SYS/TEMP] before any
// command is read.
func TestPerIPLimit(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.MaxPerIP = 1 })
	first := e.dial(STLS)
	c, err := net.Dial("tcp", e.addrs[STLS])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	l, _ := bufio.NewReader(c).ReadString('\n')
	if l != "-ERR [SYS/TEMP] Too many connections from your address, try again later\r\n" {
		t.Errorf("second connection: %q", l)
	}
	first.cmdOK("QUIT")
}
