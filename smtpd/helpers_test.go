package smtpd

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/store"
	"github.com/mailsec/mailsec/userdb"
)

// testTLS is a server configuration with wiretest's certificate for
// localhost and 127.0.0.1, and a client configuration trusting it; made
// once, since key generation would otherwise dominate short tests.
var testTLS = sync.OnceValues(func() (*tls.Config, *tls.Config) {
	return &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{wiretest.Cert()}},
		&tls.Config{RootCAs: wiretest.Pool(), ServerName: "127.0.0.1"}
})

// testEnv is a running server on loopback with users alice and bob
// (password "secret") and a Maildir store.
type testEnv struct {
	t     *testing.T
	srv   *Server
	store *store.Store
	addrs map[Kind]string
}

// startServer starts a server with one listener per kind; tune adjusts it
// before it starts.
func startServer(t *testing.T, tune func(*Server)) *testEnv {
	t.Helper()
	dir := t.TempDir()
	users, err := userdb.Open(filepath.Join(dir, "users"), &userdb.Options{
		Argon2: userdb.Argon2Params{Time: 1, Memory: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		if err := users.Add(u, "secret"); err != nil {
			t.Fatal(err)
		}
	}
	st, err := store.New(filepath.Join(dir, "mail"))
	if err != nil {
		t.Fatal(err)
	}
	srvTLS, _ := testTLS()
	s := &Server{Hostname: "mx.test", Domains: []string{"localhost", "example.test"},
		TLSConfig: srvTLS, Users: users, Backend: Maildir{Store: st},
		Limits: Limits{AuthFailureDelay: -1, CommandTimeout: 5 * time.Second}}
	if tune != nil {
		tune(s)
	}
	e := &testEnv{t: t, srv: s, store: st, addrs: map[Kind]string{}}
	for _, k := range []Kind{MX, Submission, SMTPS} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		e.addrs[k] = ln.Addr().String()
		go s.Serve(ln, k, TLSMay)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return e
}

// newMail lists the files in user's new/ directory.
func (e *testEnv) newMail(user string) []string {
	e.t.Helper()
	dir, _ := e.store.Path(user)
	ents, _ := os.ReadDir(filepath.Join(dir, "new"))
	var out []string
	for _, en := range ents {
		b, err := os.ReadFile(filepath.Join(dir, "new", en.Name()))
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// tmpFiles counts the files in user's tmp/ directory.
func (e *testEnv) tmpFiles(user string) int {
	dir, _ := e.store.Path(user)
	ents, _ := os.ReadDir(filepath.Join(dir, "tmp"))
	return len(ents)
}

// client is a scripted, possibly hostile, SMTP client.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (e *testEnv) dial(k Kind) *client {
	e.t.Helper()
	c, err := net.Dial("tcp", e.addrs[k])
	if err != nil {
		e.t.Fatal(err)
	}
	if k == SMTPS {
		_, cli := testTLS()
		c = tls.Client(c, cli)
	}
	cl := &client{t: e.t, conn: c, r: bufio.NewReader(c)}
	e.t.Cleanup(func() { c.Close() })
	cl.conn.SetDeadline(time.Now().Add(20 * time.Second))
	cl.expect(220)
	return cl
}

// send writes raw bytes.
func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// read returns the next reply's code and full text, or code 0 at EOF.
func (c *client) read() (int, string) {
	c.t.Helper()
	var text []string
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return 0, strings.Join(text, "\n") + " [" + err.Error() + "]"
		}
		line = strings.TrimRight(line, "\r\n")
		text = append(text, line)
		if len(line) < 4 {
			c.t.Fatalf("short reply line %q", line)
		}
		if line[3] == ' ' {
			code, _ := strconv.Atoi(line[:3])
			return code, strings.Join(text, "\n")
		}
	}
}

// expect reads a reply and fails unless it has the code.
func (c *client) expect(code int) string {
	c.t.Helper()
	got, text := c.read()
	if got != code {
		c.t.Fatalf("want %d, got %d %q", code, got, text)
	}
	return text
}

// cmd sends one command line and expects code.
func (c *client) cmd(line string, code int) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.expect(code)
}

// starttls upgrades the connection.
func (c *client) starttls() {
	c.t.Helper()
	c.cmd("STARTTLS", 220)
	_, cli := testTLS()
	tc := tls.Client(c.conn, cli)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
}

// expectClosed fails unless the server closes the connection (possibly
// after a 421).
func (c *client) expectClosed() {
	c.t.Helper()
	for {
		code, text := c.read()
		if code == 0 {
			return
		}
		if code != 421 {
			c.t.Fatalf("want close, got %d %q", code, text)
		}
	}
}

// tlsState is the connection state type, named for interface assertions.
type tlsState = tls.ConnectionState

func dialRaw(addr string) (net.Conn, error) { return net.Dial("tcp", addr) }
