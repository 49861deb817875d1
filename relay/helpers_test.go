package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/dnstest"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/queue/embedded"
	"github.com/mailsec/mailsec/resolve"
	"github.com/mailsec/mailsec/smtpd"
	"github.com/mailsec/mailsec/store"
	"github.com/mailsec/mailsec/userdb"
)

// received is one message a destination took.
type received struct {
	env  *smtpd.Envelope
	body string
}

// sink is a destination Backend keeping what it receives.
type sink struct {
	mu   sync.Mutex
	msgs []received
	got  chan struct{}
}

func newSink() *sink { return &sink{got: make(chan struct{}, 1000)} }

func (s *sink) Deliver(_ context.Context, env *smtpd.Envelope, msg io.Reader) error {
	b, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.msgs = append(s.msgs, received{env, string(b)})
	s.mu.Unlock()
	s.got <- struct{}{}
	return nil
}

func (s *sink) all() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

// dest is a real smtpd server as a destination, on one loopback address.
type dest struct {
	srv   *smtpd.Server
	sink  *sink
	addr  string
	conns atomic.Int32
	ln    net.Listener
}

// countingListener counts the connections a destination accepts.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// startDest runs an MX server on ip:port (port 0: any) with cert (nil:
// no STARTTLS); tune may change the server before it starts.
func startDest(t *testing.T, ip string, port int, cert *tls.Certificate, kind smtpd.Kind, tune func(*smtpd.Server)) *dest {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	d := &dest{sink: newSink(), addr: ln.Addr().String()}
	d.ln = countingListener{ln, &d.conns}
	d.srv = &smtpd.Server{Hostname: "dest.test", Domains: []string{"example.test", "other.test"},
		Backend: d.sink, Limits: smtpd.Limits{AuthFailureDelay: -1, CommandTimeout: 5 * time.Second},
		Users: destUsers(t)}
	if cert != nil {
		d.srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	if tune != nil {
		tune(d.srv)
	}
	go d.srv.Serve(d.ln, kind, smtpd.TLSMay)
	t.Cleanup(func() { d.stop() })
	return d
}

func (d *dest) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	d.srv.Shutdown(ctx)
}

func (d *dest) port() int {
	_, p, _ := net.SplitHostPort(d.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// wait waits for n messages at the destination.
func (d *dest) wait(t *testing.T, n int) []received {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for len(d.sink.all()) < n {
		select {
		case <-d.sink.got:
		case <-deadline:
			t.Fatalf("destination %s got %d messages, want %d", d.addr, len(d.sink.all()), n)
		}
	}
	return d.sink.all()
}

// destUsers is a destination's user database: bob, carol, dave and
// smart, each with the password "secret".
func destUsers(t *testing.T) *userdb.DB {
	t.Helper()
	db, err := userdb.Open(filepath.Join(t.TempDir(), "users"), &userdb.Options{
		Argon2: userdb.Argon2Params{Time: 1, Memory: 64, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"bob", "carol", "dave", "smart"} {
		if err := db.Add(u, "secret"); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// env is a relay under test with its queue, DNS and local store.
type env struct {
	t     *testing.T
	dns   *dnstest.Server
	q     *embedded.Queue
	relay *Relay
	local *testLocal
	opts  Options
}

// testLocal is a local store for domain "local.test".
type testLocal struct {
	st    *store.Store
	boxes map[string]bool
}

func (l *testLocal) IsLocal(d string) bool { return strings.EqualFold(d, "local.test") }
func (l *testLocal) Exists(b string) bool  { return l.boxes[b] }
func (l *testLocal) Deliver(d store.Delivery, r io.Reader) error {
	return l.st.DeliverMail(d, r)
}

// mail returns the messages in a local mailbox.
func (l *testLocal) mail(t *testing.T, box string) []string {
	t.Helper()
	msgs, err := l.st.List(box)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range msgs {
		b, err := os.ReadFile(m.Path)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// newEnv makes a relay on a fresh queue with short timings; tune adjusts
// the options before the relay starts.
func newEnv(t *testing.T, port int, tune func(*Options)) *env {
	t.Helper()
	dir := t.TempDir()
	q, err := embedded.Open(filepath.Join(dir, "queue"), nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(filepath.Join(dir, "mail"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, dns: dnstest.Start(t), q: q, local: &testLocal{st: st, boxes: map[string]bool{"alice": true}}}
	e.opts = Options{Hostname: "relay.test", Queue: q, Resolver: &resolve.Resolver{Server: e.dns.Addr(), Timeout: 2 * time.Second},
		Port: port, Local: e.local, BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second,
		ConnectTimeout: 2 * time.Second, CommandTimeout: 3 * time.Second, PollInterval: 50 * time.Millisecond}
	if tune != nil {
		tune(&e.opts)
	}
	r, err := New(e.opts)
	if err != nil {
		t.Fatal(err)
	}
	e.relay = r
	r.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		r.Shutdown(ctx)
		q.Close()
	})
	return e
}

// submit enqueues a message as smtpd would, behind a Received header.
func (e *env) submit(from string, to ...string) queue.ID {
	e.t.Helper()
	env := &queue.Envelope{From: from, AuthUser: "alice"}
	for _, a := range to {
		env.Recipients = append(env.Recipients, queue.Recipient{Addr: a})
	}
	body := "Received: from client.test ([127.0.0.1])\r\n\tby relay.test (mailsec) with ESMTPSA id 1;\r\n\tThu, 03 Dec 2026 15:00:00 +0000\r\n" +
		"From: " + from + "\r\nTo: " + strings.Join(to, ", ") + "\r\nSubject: test\r\nMessage-ID: <m1@relay.test>\r\n\r\nhello\r\n"
	id, err := e.q.Enqueue(context.Background(), env, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// waitEntry waits until the entry satisfies ok, or is gone when ok is
// nil, and returns it.
func (e *env) waitEntry(id queue.ID, what string, ok func(*queue.Entry) bool) *queue.Entry {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		en, err := e.q.Get(context.Background(), id)
		if ok == nil && err != nil {
			return nil
		}
		if ok != nil && err == nil && ok(en) {
			return en
		}
		time.Sleep(20 * time.Millisecond)
	}
	en, _ := e.q.Get(context.Background(), id)
	e.t.Fatalf("message %s never %s; last state %+v", id, what, en)
	return nil
}

// gone waits until the message has left the queue.
func (e *env) gone(id queue.ID) { e.t.Helper(); e.waitEntry(id, "left the queue", nil) }

// deferred waits for the message's first recorded attempt.
func (e *env) deferred(id queue.ID) *queue.Entry {
	e.t.Helper()
	return e.waitEntry(id, "was deferred", func(en *queue.Entry) bool { return en.Attempts > 0 })
}

// mx publishes domain's MX host name at ip.
func (e *env) mx(domain string, pref int, host, ip string) {
	e.dns.Add(domain+". 300 IN MX "+strconv.Itoa(pref)+" "+host+".", host+". 300 IN A "+ip)
}

// certFor is a certificate for name and the pool trusting it.
func certFor(t *testing.T, name string) (*tls.Certificate, *x509.CertPool) {
	c, p := wiretest.SelfSigned(t, name)
	return &c, p
}
