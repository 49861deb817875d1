package pop3d

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The attacks of a hostile client that the other tests do not cover: STLS
// injection split across packets, out-of-range and malformed arguments,
// large and changing maildrops, and the lock of a session that died.

// Plaintext arriving after STLS in a later packet, or after the +OK but
// before the ClientHello, goes to the TLS handshake, which fails: it never
// runs as a command.
func TestSTLSInjectionBeforeClientHello(t *testing.T) {
	for name, script := range map[string]func(c *client){
		"split packet": func(c *client) {
			c.send("STLS\r\n")
			time.Sleep(50 * time.Millisecond)
			c.send("USER alice\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n")
			c.ok()
		},
		"after +OK": func(c *client) {
			c.cmdOK("STLS")
			c.send("USER alice\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n")
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := startServer(t, nil)
			e.deliver("alice", msgDots)
			c := e.dial(STLS)
			script(c)
			c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, _ := io.ReadAll(c.r)
			if strings.Contains(string(rest), "+OK") {
				t.Fatalf("injected commands answered: %q", rest)
			}
			if ms, _ := e.store.List("alice"); len(ms) != 1 {
				t.Errorf("%d messages left", len(ms))
			}
		})
	}
}

func TestHostileArguments(t *testing.T) {
	e := startServer(t, nil)
	e.deliver("alice", msgLong, msgDots)
	c := e.dial(POP3S)
	c.cmdErr("APOP alice 0123456789abcdef0123456789abcdef") // not offered
	c.cmdErr("LIST")                                        // before login
	c.cmdOK("USER alice")
	c.cmdOK("PASS secret")
	c.cmdErr("RETR 0")
	c.cmdErr("RETR 3")
	c.cmdErr("RETR 4294967297") // not 1 after overflow
	c.cmdErr("LIST -1")
	c.cmdErr("LIST +1")
	c.cmdErr("TOP 1 -1")
	c.cmdErr("TOP 1")
	c.cmdErr("TOP 1 x")
	c.cmdErr("RETR 1 2")
	// A huge line count is just the whole message (RFC 1939 section 7).
	if got := c.multi("TOP 1 99999999999999999999"); got != msgLong {
		t.Errorf("TOP huge: %q", got)
	}
	if got := c.multi("TOP 1 0"); got != "Subject: long\r\nX: y\r\n\r\n" {
		t.Errorf("TOP 0: %q", got)
	}
	c.cmdOK("DELE 1")
	c.cmdErr("DELE 1")
	c.cmdErr("UIDL 1")
	c.cmdErr("LIST 1")
	c.cmdErr("RETR 1")
	if got := c.multi("UIDL"); strings.HasPrefix(got, "1 ") || !strings.HasPrefix(got, "2 ") {
		t.Errorf("UIDL lists the deleted message: %q", got)
	}
	c.cmdErr("USER bob") // no USER in TRANSACTION
	c.cmdErr("STLS")
	c.cmdOK("RSET")
	c.cmdOK("QUIT")
	if ms, _ := e.store.List("alice"); len(ms) != 2 {
		t.Errorf("%d messages left after RSET", len(ms))
	}
}

// A maildrop of 1,000 messages lists, retrieves and deletes whole.
func TestThousandMessages(t *testing.T) {
	e := startServer(t, nil)
	for i := 0; i < 1000; i++ {
		if err := e.store.Deliver([]string{"alice"}, strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	c := e.login("alice")
	if l := c.cmdOK("STAT"); !strings.HasPrefix(l, "+OK 1000 ") {
		t.Fatalf("STAT %q", l)
	}
	if lines := strings.Count(c.multi("LIST"), "\r\n"); lines != 1000 {
		t.Fatalf("LIST has %d lines", lines)
	}
	uidl := c.multi("UIDL")
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSuffix(uidl, "\r\n"), "\r\n") {
		_, uid, _ := strings.Cut(l, " ")
		if seen[uid] {
			t.Fatalf("duplicate UID %q", uid)
		}
		seen[uid] = true
	}
	c.multi("RETR 1000")
	var b strings.Builder
	for i := 1; i <= 1000; i++ {
		b.WriteString("DELE " + strconv.Itoa(i) + "\r\n")
	}
	c.send(b.String()) // pipelined (RFC 2449 section 6.6)
	for i := 0; i < 1000; i++ {
		c.ok()
	}
	c.cmdOK("QUIT")
	if ms, _ := e.store.List("alice"); len(ms) != 0 {
		t.Errorf("%d messages left", len(ms))
	}
}

// A message removed on disk by someone else during the session gives a
// temporary error, not a broken response, and the session goes on.
func TestMessageRemovedMidSession(t *testing.T) {
	e := startServer(t, nil)
	e.deliver("alice", msgLong, msgDots)
	c := e.login("alice")
	ms, _ := e.store.List("alice")
	if err := os.Remove(ms[0].Path); err != nil {
		t.Fatal(err)
	}
	if l := c.cmdErr("RETR 1"); !strings.Contains(l, "[SYS/TEMP]") {
		t.Errorf("RETR of a vanished message: %q", l)
	}
	if got := c.multi("RETR 2"); got != msgDots {
		t.Errorf("RETR 2: %q", got)
	}
	c.cmdOK("DELE 1")
	c.cmdOK("QUIT") // a message already gone counts as removed
}

// A session that dies without QUIT releases the maildrop lock, so the
// next login is not locked out, and deletes nothing.
func TestLockAfterCrashedSession(t *testing.T) {
	e := startServer(t, nil)
	e.deliver("alice", msgDots)
	// A lock file left by a crashed process locks nothing: the lock is an
	// flock(2), which dies with its holder.
	dir, _ := e.store.Path("alice")
	if err := os.WriteFile(filepath.Join(dir, ".lock"), []byte("4242\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := e.login("alice")
	a.cmdOK("DELE 1")
	a.conn.(interface{ NetConn() net.Conn }).NetConn().Close() // no TLS close_notify, no QUIT
	b := e.dial(POP3S)
	deadline := time.Now().Add(5 * time.Second)
	for {
		b.cmdOK("USER alice")
		b.send("PASS secret\r\n")
		l, _ := b.line()
		if strings.HasPrefix(l, "+OK") {
			break
		}
		if !strings.HasPrefix(l, "-ERR [IN-USE]") || time.Now().After(deadline) {
			t.Fatalf("login after the crash: %q", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if l := b.cmdOK("STAT"); !strings.HasPrefix(l, "+OK 1 ") {
		t.Errorf("STAT %q: the dead session's DELE took effect", l)
	}
}

// AUTH edge cases: "=" and "*", bad base64, an empty LOGIN user name, an
// over-long response line.
func TestAuthEdgeCases(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.MaxAuthFailures = 100 })
	c := e.dial(POP3S)
	c.cmdErr("AUTH PLAIN =")
	c.cmdErr("AUTH PLAIN *")
	c.cmdErr("AUTH PLAIN !!!!")
	c.cmdOK2("AUTH LOGIN")
	c.cmdErr("")
	c.cmdOK2("AUTH PLAIN")
	c.cmdErr(strings.Repeat("A", maxSASLLine))
	c.cmdErr("AUTH PLAIN " + strings.Repeat("A", 300)) // over the 255-octet command limit
	c.cmdOK("USER alice")
	c.cmdOK("PASS secret")
}

// A client that sends half a ClientHello to POP3S is cut off by the idle
// timeout.
func TestSlowTLSHandshake(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.IdleTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", e.addrs[POP3S])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00})
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("not closed: %v", err)
	}
}

// cmdOK2 sends a line and expects a SASL continuation ("+ ...").
func (c *client) cmdOK2(line string) {
	c.t.Helper()
	c.send(line + "\r\n")
	if l, _ := c.line(); !strings.HasPrefix(l, "+ ") {
		c.t.Fatalf("%s: want a continuation, got %q", line, l)
	}
}

// The back-off counts by client address: reconnecting after every failed
// guess does not reset it.
func TestBackOffAcrossSessions(t *testing.T) {
	const delay = 40 * time.Millisecond
	e := startServer(t, func(s *Server) { s.Limits.AuthFailureDelay = delay })
	for i, want := range []time.Duration{delay, 2 * delay, 4 * delay} {
		c := e.dial(POP3S)
		c.cmdOK("USER alice")
		start := time.Now()
		c.cmdErr("PASS guess")
		if d := time.Since(start); d < want {
			t.Errorf("session %d: failure answered after %v, want at least %v", i+1, d, want)
		}
		c.cmdOK("QUIT")
	}
}

// Files another program put into the Maildir: no final line end, no empty
// line after the header, one line longer than any buffer. RETR and TOP
// still end their responses properly.
func TestOddMessageFiles(t *testing.T) {
	e := startServer(t, nil)
	long := strings.Repeat("y", 100<<10)
	e.deliver("alice", "Subject: no end", "Subject: x\r\n"+long+"\r\n.\r\n")
	c := e.login("alice")
	if got := c.multi("RETR 1"); got != "Subject: no end\r\n" {
		t.Errorf("RETR 1: %q", got)
	}
	if got := c.multi("TOP 1 0"); got != "Subject: no end\r\n" {
		t.Errorf("TOP 1 0: %q", got)
	}
	if got := c.multi("TOP 2 0"); got != "Subject: x\r\n"+long+"\r\n.\r\n" {
		t.Errorf("TOP 2 0: %d octets", len(got))
	}
	c.cmdOK("NOOP") // still in step
}

// Commands before STLS in one packet are fine when STLS ends the group;
// after the handshake only answers to commands sent over TLS arrive.
func TestSTLSAfterPipelinedGroup(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(STLS)
	c.send("NOOP\r\nSTLS\r\n")
	c.err() // NOOP is not valid before login
	c.ok()
	_, cli := testTLS()
	tc := tls.Client(c.conn, cli)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.cmdOK("USER alice")
	c.cmdOK("PASS secret")
	c.cmdErr("STLS")
}
