package pop3d

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"path/filepath"
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

// testEnv is a running server with users alice and bob (password
// "secret") and one listener of each kind.
type testEnv struct {
	t     *testing.T
	srv   *Server
	store *store.Store
	addrs map[Kind]string
}

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
	s := &Server{Hostname: "pop.test", TLSConfig: srvTLS, Users: users, Store: st,
		Limits: Limits{AuthFailureDelay: -1, IdleTimeout: 5 * time.Second}}
	if tune != nil {
		tune(s)
	}
	e := &testEnv{t: t, srv: s, store: st, addrs: map[Kind]string{}}
	for _, k := range []Kind{STLS, POP3S} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		e.addrs[k] = ln.Addr().String()
		go s.Serve(ln, k)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return e
}

// deliver puts messages into user's maildrop the way smtpd does.
func (e *testEnv) deliver(user string, msgs ...string) {
	e.t.Helper()
	for _, m := range msgs {
		if err := e.store.Deliver([]string{user}, strings.NewReader(m)); err != nil {
			e.t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // distinct delivery times keep the order
	}
}

// client is a scripted, possibly hostile, POP3 client.
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
	if k == POP3S {
		_, cli := testTLS()
		c = tls.Client(c, cli)
	}
	cl := &client{t: e.t, conn: c, r: bufio.NewReader(c)}
	e.t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	cl.ok()
	return cl
}

// login opens a POP3S session logged in as user with USER/PASS.
func (e *testEnv) login(user string) *client {
	e.t.Helper()
	c := e.dial(POP3S)
	c.cmdOK("USER " + user)
	c.cmdOK("PASS secret")
	return c
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// line reads one response line without CRLF; "" and false at EOF.
func (c *client) line() (string, bool) {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		return l, false
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n"), true
}

// ok reads a response and fails unless it is +OK.
func (c *client) ok() string {
	c.t.Helper()
	l, alive := c.line()
	if !alive || !strings.HasPrefix(l, "+OK") {
		c.t.Fatalf("want +OK, got %q (alive %v)", l, alive)
	}
	return l
}

// err reads a response and fails unless it is -ERR.
func (c *client) err() string {
	c.t.Helper()
	l, alive := c.line()
	if !alive || !strings.HasPrefix(l, "-ERR") {
		c.t.Fatalf("want -ERR, got %q (alive %v)", l, alive)
	}
	return l
}

func (c *client) cmdOK(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.ok()
}

func (c *client) cmdErr(line string) string {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.err()
}

// multi sends a command expecting a multi-line response and returns its
// body with the byte-stuffing undone and CRLF line ends kept.
func (c *client) multi(line string) string {
	c.t.Helper()
	c.cmdOK(line)
	var b strings.Builder
	for {
		l, alive := c.line()
		if !alive {
			c.t.Fatalf("%s: connection ended in a multi-line response", line)
		}
		if l == "." {
			return b.String()
		}
		b.WriteString(strings.TrimPrefix(l, "."))
		b.WriteString("\r\n")
	}
}

// stls upgrades a plain session.
func (c *client) stls() {
	c.t.Helper()
	c.cmdOK("STLS")
	_, cli := testTLS()
	tc := tls.Client(c.conn, cli)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("handshake: %v", err)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
}

// expectClosed fails unless the server closes the connection, possibly
// after -ERR lines.
func (c *client) expectClosed() {
	c.t.Helper()
	for {
		l, alive := c.line()
		if !alive {
			return
		}
		if !strings.HasPrefix(l, "-ERR") {
			c.t.Fatalf("want close, got %q", l)
		}
	}
}

// tlsState is the connection state type, named for interface assertions.
type tlsState = tls.ConnectionState
