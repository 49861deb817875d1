package smtpd

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The attacks of a hostile client that the other tests do not cover, one
// class per test: STARTTLS command injection (CVE-2011-0411), SMTP
// smuggling (CVE-2023-51764 and kin), parser edge cases, resource
// exhaustion and the integrity of what reaches the Maildir.

// Plaintext that arrives after STARTTLS in a later packet, or after the 220
// but before the ClientHello, is fed to the TLS handshake, which fails: it
// is never executed as a command.
func TestSTARTTLSInjectionBeforeClientHello(t *testing.T) {
	for name, script := range map[string]func(c *client){
		"split packet": func(c *client) {
			c.send("STARTTLS\r\n")
			time.Sleep(50 * time.Millisecond) // a second segment
			c.send("MAIL FROM:<evil@y.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n")
			c.expect(220)
		},
		"after 220": func(c *client) {
			c.cmd("STARTTLS", 220)
			c.send("MAIL FROM:<evil@y.test>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n")
		},
	} {
		t.Run(name, func(t *testing.T) {
			e := startServer(t, nil)
			c := e.dial(MX)
			c.cmd("EHLO client.test", 250)
			script(c)
			// Whatever the server sends now is a TLS alert or nothing, never
			// an SMTP reply to the injected commands.
			c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			rest, _ := io.ReadAll(c.r)
			if strings.Contains(string(rest), "250") || strings.Contains(string(rest), "354") {
				t.Fatalf("injected commands answered: %q", rest)
			}
			if len(e.newMail("alice")) != 0 {
				t.Fatal("injected mail delivered")
			}
		})
	}
}

// Commands before STARTTLS in the same packet are fine (RFC 2920 section
// 3.1: STARTTLS ends the group); their replies all come before the 220,
// and after the handshake the client only ever reads answers to what it
// sent over TLS.
func TestSTARTTLSRepliesNotInfluencedByPlaintext(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.send("EHLO client.test\r\nNOOP\r\nSTARTTLS\r\n")
	c.expect(250)
	c.expect(250)
	c.expect(220)
	_, cli := testTLS()
	tc := tls.Client(c.conn, cli)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.cmd("HELP", 214) // the first reply under TLS answers HELP
	c.cmd("MAIL FROM:<x@y.test>", 503)
	if txt := c.cmd("EHLO client.test", 250); strings.Contains(txt, "STARTTLS") {
		t.Errorf("STARTTLS advertised inside TLS: %q", txt)
	}
	c.cmd("STARTTLS", 503)
	c.cmd("STARTTLS x", 503)
}

// STLS-style injection on SMTPS: there is no STARTTLS inside implicit TLS.
func TestSTARTTLSOnSMTPS(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(SMTPS)
	c.cmd("EHLO client.test", 250)
	c.cmd("STARTTLS", 503)
}

// Once authenticated inside TLS, AUTH is no longer advertised (RFC 4954
// section 4) and STARTTLS stays refused.
func TestAuthStateAfterTLS(t *testing.T) {
	e := startServer(t, nil)
	c := submit(e)
	authenticate(t, c, "PLAIN", "alice", "secret", 235)
	if txt := c.cmd("EHLO client.test", 250); strings.Contains(txt, "AUTH ") {
		t.Errorf("AUTH advertised after login: %q", txt)
	}
	c.cmd("STARTTLS", 503)
}

// End-of-data look-alikes with a NUL next to the dot or a bare CR inside a
// line: the message is refused whole and nothing after the fake marker
// runs as a command.
func TestSmugglingNUL(t *testing.T) {
	for name, c := range map[string]struct{ fake, want string }{
		"NUL before dot": {"\r\n\x00.\r\n", "NUL"},
		"NUL after dot":  {"\r\n.\x00\r\n", "NUL"},
		"bare CR":        {"\r\nX-A: b\rc\r\n", "bare LF or CR"},
		"CR.CRLF":        {"\r.\r\n", "bare LF or CR"},
	} {
		t.Run(name, func(t *testing.T) { refusesSmuggling(t, c.fake, c.want) })
	}
}

// A NUL inside a BDAT chunk is refused as in DATA: BINARYMIME is not
// offered (RFC 3030 section 3).
func TestBDATNUL(t *testing.T) {
	e := startServer(t, nil)
	c := mxTransaction(e)
	c.send("BDAT 7 LAST\r\nab\x00cd\r\n")
	c.expect(554)
	c.cmd("NOOP", 250)
	if m := e.newMail("alice"); len(m) != 0 {
		t.Errorf("stored %q", m)
	}
}

// BDAT content is opaque: dot lines and commands inside a chunk are
// message text, stored as sent, one message.
func TestBDATDotLinesAndCommandsAreData(t *testing.T) {
	e := startServer(t, nil)
	c := mxTransaction(e)
	body := "Subject: b\r\n\r\n.\r\nMAIL FROM:<evil@y.test>\r\nRCPT TO:<bob@localhost>\r\n..x\r\n"
	c.send("BDAT " + strconv.Itoa(len(body)) + " LAST\r\n" + body)
	c.expect(250)
	m := e.newMail("alice")
	if len(m) != 1 || !strings.HasSuffix(m[0], "\r\n"+body) {
		t.Fatalf("got %q", m)
	}
	if len(e.newMail("bob")) != 0 {
		t.Fatal("command inside a chunk executed")
	}
}

// A chunk shorter than its declared size swallows the following command as
// data; a longer one leaves the rest to be read as commands. Either way the
// server stays in step with the octet count (RFC 3030 section 2).
func TestBDATSizeLies(t *testing.T) {
	e := startServer(t, nil)
	c := mxTransaction(e)
	c.send("BDAT 5 LAST\r\nhelloNOOP\r\n") // larger than declared
	c.expect(250)
	c.expect(250) // NOOP
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<bob@localhost>", 250)
	c.send("BDAT 10 LAST\r\nhi\r\nNOOP\r\n") // NOOP is data
	c.expect(250)
	m := e.newMail("bob")
	if len(m) != 1 || !strings.HasSuffix(m[0], "\r\nhi\r\nNOOP\r\n") {
		t.Fatalf("got %q", m)
	}
}

// BDAT 0 LAST ends a message of earlier chunks; BDAT after a DATA message
// has no transaction; RSET mid-BDAT stores nothing and leaves no debris.
func TestBDATSequences(t *testing.T) {
	e := startServer(t, nil)
	c := mxTransaction(e)
	c.send("BDAT 6\r\nab\r\nc\r")
	c.expect(250)
	c.send("BDAT 1\r\n\n")
	c.expect(250)
	c.cmd("BDAT 0 LAST", 250)
	if m := e.newMail("alice"); len(m) != 1 || !strings.HasSuffix(m[0], "\r\nab\r\nc\r\n") {
		t.Fatalf("got %q", m)
	}

	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<bob@localhost>", 250)
	c.cmd("DATA", 354)
	c.send("hi\r\n.\r\n")
	c.expect(250)
	c.send("BDAT 3 LAST\r\nabc")
	c.expect(503) // the DATA ended the transaction

	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<bob@localhost>", 250)
	c.send("BDAT 4\r\nab\r\n")
	c.expect(250)
	c.cmd("RCPT TO:<alice@localhost>", 503) // no RCPT once the data began
	c.cmd("RSET", 250)
	c.cmd("BDAT 0 LAST", 503)
	if n := len(e.newMail("bob")); n != 1 {
		t.Fatalf("bob has %d messages", n)
	}
	if n := e.tmpFiles("bob"); n != 0 {
		t.Fatalf("%d files left in tmp/", n)
	}
}

// A 100 MB chunk declared and never sent holds no memory for it: the
// session waits for the octets and is cut off by the progress timeout.
func TestBDATDeclaredNotSent(t *testing.T) {
	e := startServer(t, func(s *Server) {
		s.Limits.MaxMessageSize = 200 << 20
		s.Limits.CommandTimeout = 300 * time.Millisecond
	})
	c := mxTransaction(e)
	runtime.GC()
	var before, during runtime.MemStats
	runtime.ReadMemStats(&before)
	c.send("BDAT 100000000 LAST\r\nabc")
	time.Sleep(100 * time.Millisecond) // the server waits for the rest
	runtime.ReadMemStats(&during)
	if grew := int64(during.HeapInuse) - int64(before.HeapInuse); grew > 32<<20 {
		t.Errorf("heap grew by %d MiB for a chunk not sent", grew>>20)
	}
	if txt := c.expect(421); !strings.Contains(txt, "Timeout") {
		t.Errorf("got %q", txt)
	}
	if len(e.newMail("alice")) != 0 || e.tmpFiles("alice") != 0 {
		t.Error("partial chunk stored")
	}
}

func TestCommandParsing(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	c.cmd("NO\x00OP", 500)
	c.cmd("NO\xffOP", 500)
	c.cmd("\xe9HLO client.test", 500)
	c.cmd("EHLO client.test", 250)
	// RFC 5321 section 4.5.3.1.4: 512 octets with the CRLF.
	c.cmd("NOOP "+strings.Repeat("a", 512-7), 250)
	c.cmd("NOOP "+strings.Repeat("a", 512-6), 500)
	c.cmd("RCPT TO:<alice@localhost>", 503) // before MAIL
	c.cmd("MAIL FROM:<x@y.test> SIZE=10 SIZE=20", 501)
	c.cmd("MAIL FROM:<x@y.test> BODY=7BIT BODY=8BITMIME", 501)
	c.cmd("MAIL FROM:<x@y.test> XFOO", 555)
	c.cmd("MAIL FROM:<x@y.test> SIZE=-1", 501)
	// RFC 1870 section 6: a size-value over the limit is 552, even one
	// beyond 64 bits.
	c.cmd("MAIL FROM:<x@y.test> SIZE=99999999999999999999", 552)
	c.cmd("MAIL FROM:<x@y.test> SIZE=999999999999", 552)
	c.cmd(`MAIL FROM:<"a\"b>c"@y.test>`, 250)
	c.cmd("MAIL FROM:<x@y.test>", 503) // twice
	c.cmd("RSET", 250)
	c.cmd(`MAIL FROM:<"a"b"@y.test>`, 501)
	c.cmd(`MAIL FROM:<"a\`, 501)
	c.cmd("MAIL FROM:<@a.test,@b.test:x@y.test>", 250)
	c.cmd("RCPT TO:<alice@[127.0.0.1]>", 550)
	c.cmd("RCPT TO:<alice@bücher.test>", 553) // no SMTPUTF8
	c.cmd("RCPT TO:<alice@localhost> FOO=1", 555)
	c.cmd("RCPT TO:<alice@localhost> NOTIFY=NEVER NOTIFY=NEVER", 501)
	c.cmd("RCPT TO:<>", 501)
	c.cmd("RSET", 250)
	c.cmd("MAIL FROM:<x@[IPv6:::1]>", 250)
	c.cmd("RSET", 250)
	c.cmd("MAIL FROM:<x@bücher.test> SMTPUTF8", 250)
	c.cmd("RSET x", 501)
	c = e.dial(MX) // a fresh error count
	c.cmd("VRFY alice", 252)
	c.cmd("EXPN alice", 502)
	c.cmd("HELP me", 214)
}

// What the client says in EHLO ends up in the Received header, so only a
// domain or an IP address literal is accepted (RFC 5321 section 4.1.3).
func TestHeloInjection(t *testing.T) {
	e := startServer(t, nil)
	c := e.dial(MX)
	for _, bad := range []string{"a.test\rX-Evil: 1", "a.test\tb", "[1.2.3.4](x)", "[a;b]", "[x]\"y", "a..b", "bücher.test"} {
		c.send("EHLO " + bad + "\r\n")
		if code, txt := c.read(); code != 501 && code != 500 {
			t.Errorf("EHLO %q: %d %q", bad, code, txt)
		}
	}
	c.cmd("EHLO [127.0.0.1]", 250)
	c.cmd("EHLO [IPv6:::1]", 250)
	c.cmd("EHLO client.test", 250)
	c.cmd("MAIL FROM:<\"x\\\"\\\\y\"@y.test>", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	c.cmd("DATA", 354)
	c.send("Subject: s\r\n\r\nb\r\n.\r\n")
	c.expect(250)
	m := e.newMail("alice")
	if len(m) != 1 {
		t.Fatalf("got %d", len(m))
	}
	hdr, _, _ := strings.Cut(afterFinal(t, m[0], "\"x\\\"\\\\y\"@y.test", "alice@localhost"), "Subject: s")
	if strings.Count(hdr, "\r\n") != 4 || strings.Count(hdr, "Received:") != 1 || strings.Contains(hdr, "x\\") {
		t.Errorf("Received header %q", hdr)
	}
	for _, l := range strings.Split(strings.TrimSuffix(hdr, "\r\n"), "\r\n")[1:] {
		if !strings.HasPrefix(l, "\t") {
			t.Errorf("header line %q is not a continuation", l)
		}
	}
}

func TestAuthEdgeCases(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.MaxAuthFailures = 100 })
	c := submit(e)
	c.cmd("AUTH PLAIN =", 535) // empty initial response
	c.cmd("AUTH LOGIN", 334)
	c.cmd("=", 535) // an empty user name fails at once
	c.cmd("AUTH LOGIN", 334)
	c.cmd("*", 501)
	c.cmd("AUTH PLAIN", 334)
	c.cmd("!!!!", 501)
	// RFC 4954 section 4: 12288 octets with the CRLF are allowed, more not.
	pad := strings.Repeat("A", 12288-2-len("AUTH PLAIN "))
	c.cmd("AUTH PLAIN "+pad, 501) // read and decoded: not too long, just bad base64
	c.cmd("AUTH PLAIN "+pad+"AAAA", 500)
	c.cmd("AUTH PLAIN", 334)
	c.cmd(strings.Repeat("A", 12288), 500)
	// SCRAM with a nonce the server did not send, or asking for channel
	// binding the server never offered.
	for _, first := range []string{"p=tls-unique,,n=alice,r=abc", "n,,n=alice,r=abc"} {
		c.cmd("AUTH SCRAM-SHA-256 "+base64.StdEncoding.EncodeToString([]byte(first)), map[bool]int{true: 535, false: 334}[first[0] == 'p'])
		if first[0] == 'n' {
			c.cmd(base64.StdEncoding.EncodeToString([]byte("c=biws,r=wrongnonce,p=AAAA")), 535)
		}
	}
	authenticate(t, c, "PLAIN", "alice", "secret", 235)
}

// Each failed login waits longer than the one before (AuthFailureDelay
// doubling), so a guesser is slowed.
func TestAuthBackoffSlowsGuessing(t *testing.T) {
	const delay = 40 * time.Millisecond
	e := startServer(t, func(s *Server) { s.Limits.AuthFailureDelay = delay; s.Limits.MaxAuthFailures = 3 })
	c := submit(e)
	for i, want := range []time.Duration{delay, 2 * delay} {
		start := time.Now()
		c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00guess")), 535)
		if d := time.Since(start); d < want {
			t.Errorf("failure %d answered after %v, want at least %v", i+1, d, want)
		}
	}
}

// The back-off counts by client address: a guesser that opens a fresh
// session after each failure is slowed as much as one that stays.
func TestAuthBackoffAcrossSessions(t *testing.T) {
	const delay = 40 * time.Millisecond
	e := startServer(t, func(s *Server) { s.Limits.AuthFailureDelay = delay })
	for i, want := range []time.Duration{delay, 2 * delay, 4 * delay} {
		c := submit(e)
		start := time.Now()
		c.cmd("AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00guess")), 535)
		if d := time.Since(start); d < want {
			t.Errorf("session %d: failure answered after %v, want at least %v", i+1, d, want)
		}
		c.cmd("QUIT", 221)
	}
}

// A client that opens TCP to SMTPS and sends half a ClientHello is cut off
// by the command timeout; it does not hold a session forever.
func TestSlowTLSHandshake(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.CommandTimeout = 300 * time.Millisecond })
	c, err := net.Dial("tcp", e.addrs[SMTPS])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00}) // a record header promising 512 octets
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Fatalf("not closed: %v", err)
	}
}

// Sending nothing at all after the greeting is cut off too.
func TestSilentClient(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.CommandTimeout = 300 * time.Millisecond })
	c := e.dial(MX)
	if txt := c.expect(421); !strings.Contains(txt, "Timeout") {
		t.Errorf("got %q", txt)
	}
}

// RFC 5321 section 4.5.3.1.6: a text line of exactly 1000 octets with the
// CRLF is taken, 1001 is refused, in DATA and in BDAT alike, wherever the
// chunk boundary falls.
func TestTextLineBoundary(t *testing.T) {
	e := startServer(t, nil)
	ok, long := strings.Repeat("x", 998)+"\r\n", strings.Repeat("x", 999)+"\r\n"
	c := mxTransaction(e)
	c.cmd("DATA", 354)
	c.send(ok + ".\r\n")
	c.expect(250)
	c = mxTransaction(e)
	c.cmd("DATA", 354)
	c.send(long + ".\r\n")
	c.expect(554)
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	c.send("BDAT 500\r\n" + ok[:500])
	c.expect(250)
	c.send("BDAT 500 LAST\r\n" + ok[500:])
	c.expect(250)
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<alice@localhost>", 250)
	c.send("BDAT 999\r\n" + long[:999])
	c.expect(250)
	c.send("BDAT 2 LAST\r\n" + long[999:])
	c.expect(554)
	if n := len(e.newMail("alice")); n != 2 {
		t.Fatalf("alice has %d messages, want 2", n)
	}
}

// Nothing reaches new/ before the 250: not during DATA, not between BDAT
// chunks (RFC 5321 section 6.1; the store renames only after fsync).
func TestNothingVisibleBeforeAck(t *testing.T) {
	e := startServer(t, nil)
	c := mxTransaction(e)
	c.cmd("DATA", 354)
	c.send("Subject: partial\r\n\r\nfirst line\r\n")
	time.Sleep(50 * time.Millisecond)
	if m := e.newMail("alice"); len(m) != 0 {
		t.Fatalf("visible during DATA: %q", m)
	}
	c.send(".\r\n")
	c.expect(250)
	if m := e.newMail("alice"); len(m) != 1 {
		t.Fatalf("%d messages after the 250", len(m))
	}
	c.cmd("MAIL FROM:<x@y.test>", 250)
	c.cmd("RCPT TO:<bob@localhost>", 250)
	c.send("BDAT 4\r\nab\r\n")
	c.expect(250)
	if m := e.newMail("bob"); len(m) != 0 {
		t.Fatalf("visible between chunks: %q", m)
	}
	c.cmd("QUIT", 221)
	for deadline := time.Now().Add(5 * time.Second); e.tmpFiles("bob") != 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond) // the session aborts the delivery as it ends
	}
	if m := e.newMail("bob"); len(m) != 0 || e.tmpFiles("bob") != 0 {
		t.Fatalf("an unfinished BDAT message was kept: %q", m)
	}
}

// Chunk sizes that overflow the running total when added must still count
// against the size limit: a client must not stream an unlimited message
// into tmp/ (RFC 1870 section 6, RFC 3030 section 4).
func TestBDATSizeOverflow(t *testing.T) {
	e := startServer(t, func(s *Server) { s.Limits.MaxMessageSize = 1000 })
	c := mxTransaction(e)
	c.send("BDAT 10\r\n01234567\r\n")
	c.expect(250)
	c.send("BDAT 9223372036854775800\r\n")
	line := strings.Repeat("z", 998) + "\r\n"
	for i := 0; i < 100; i++ {
		c.send(line)
	}
	time.Sleep(100 * time.Millisecond)
	dir, _ := e.store.Path("alice")
	ents, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	for _, en := range ents {
		if fi, err := en.Info(); err == nil && fi.Size() > 1000 {
			t.Fatalf("%s holds %d octets over a 1000-octet limit", en.Name(), fi.Size())
		}
	}
}
