package pop3d

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/store"
)

// FuzzPOP3Command checks that the command parser never panics and that
// what it accepts is well-formed.
func FuzzPOP3Command(f *testing.F) {
	for _, s := range []string{"USER alice", "PASS two words", "TOP 1 10", "AUTH PLAIN =", "capa", "LIST  1", "RETR 99999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, r := parseCommand(line)
		if r != nil {
			return
		}
		if len(cmd.verb) < 3 || len(cmd.verb) > 4 || cmd.verb != strings.ToUpper(cmd.verb) {
			t.Fatalf("verb %q", cmd.verb)
		}
		if bytes.ContainsAny(line, "\r\n\x00") {
			t.Fatalf("control characters accepted in %q", line)
		}
		for _, a := range cmd.args {
			if a == "" || strings.Contains(a, " ") {
				t.Fatalf("argument %q", a)
			}
			if n, r := msgNumber(a, 5); r == nil && (n < 1 || n > 5) {
				t.Fatalf("message number %d from %q", n, a)
			}
		}
	})
}

// fuzzUsers is a user store without password hashing cost.
type fuzzUsers struct{}

func (fuzzUsers) CheckPassword(u, p string) bool { return u == "alice" && p == "secret" }
func (fuzzUsers) SCRAMSHA256(string) (sasl.StoredCredentials, bool) {
	return sasl.StoredCredentials{}, false
}

// FuzzPOP3Session runs whole sessions from fuzzed client bytes, in
// plaintext on the STLS kind and inside TLS on the POP3S kind (where login
// and the TRANSACTION state are reachable), against a maildrop holding two
// messages: nothing may panic or hang, and the maildrop must only ever
// lose messages through QUIT.
func FuzzPOP3Session(f *testing.F) {
	for _, s := range []string{
		"USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL 1\r\nRETR 1\r\nTOP 2 1\r\nDELE 1\r\nRSET\r\nDELE 2\r\nQUIT\r\n",
		"CAPA\r\nSTLS\r\nUSER alice\r\n",
		"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nRETR 2\r\nDELE 1\r\nRETR 1\r\nNOOP\r\n",
		"AUTH LOGIN\r\nYWxpY2U=\r\nc2VjcmV0\r\nLIST 3\r\nQUIT\r\n",
		"USER alice\r\nPASS secret\r\nDELE 1\r\n",
	} {
		f.Add([]byte(s), true)
		f.Add([]byte(s), false)
	}
	srvTLS, cliTLS := testTLS()
	// Resumed handshakes keep the POP3S runs cheap.
	cliTLS = cliTLS.Clone()
	cliTLS.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	// One store for all runs; a run that deleted messages gets them back
	// by plain writes (fsync-free, unlike a delivery) under their names,
	// so the maildrop is the same for every run.
	st, err := store.New(filepath.Join(f.TempDir(), "mail"))
	if err != nil {
		f.Fatal(err)
	}
	texts := map[string]string{}
	for _, m := range []string{msgDots, msgLong} {
		if err := st.Deliver([]string{"alice"}, strings.NewReader(m)); err != nil {
			f.Fatal(err)
		}
	}
	ms, _ := st.List("alice")
	for _, m := range ms {
		b, _ := os.ReadFile(m.Path)
		texts[m.Path] = string(b)
	}
	f.Fuzz(func(t *testing.T, in []byte, implicit bool) {
		for path, text := range texts {
			if _, err := os.Stat(path); err != nil {
				if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		s := &Server{Hostname: "fuzz", TLSConfig: srvTLS, Users: fuzzUsers{}, Store: st,
			Limits: Limits{IdleTimeout: 200 * time.Millisecond, AuthFailureDelay: -1}}
		s.setup()
		a, b := net.Pipe()
		kind := STLS
		var c net.Conn = b
		if implicit {
			kind, c = POP3S, tls.Client(b, cliTLS)
		}
		done := make(chan struct{})
		go func() {
			s.handle(a, kind)
			close(done)
		}()
		go io.Copy(io.Discard, c)
		c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		c.Write(in)
		// The server has read everything; it executes what it buffered
		// and then meets the end of the connection.
		c.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("session hangs")
		}
		// Only QUIT may delete (RFC 1939 section 6).
		if ms, _ := st.List("alice"); len(ms) < 2 && !bytes.Contains(bytes.ToUpper(in), []byte("QUIT")) {
			t.Fatalf("messages lost without QUIT: %d left", len(ms))
		}
	})
}
