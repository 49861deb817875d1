package relay

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/resolve"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/smtpd"
)

// verify checks the chain and the MX host name: the right name delivers,
// the wrong one defers and never sends the message.
func TestVerify(t *testing.T) {
	cert, pool := certFor(t, "mx1.example.test")
	d := startDest(t, "127.0.0.2", 0, cert, smtpd.MX, nil)
	e := newEnv(t, d.port(), func(o *Options) { o.RootCAs = pool; o.Policy = Verify })
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	e.mx("other.test", 10, "mx.other.test", "127.0.0.2") // same server, certificate for another name
	good := e.submit("alice@local.test", "bob@example.test")
	d.wait(t, 1)
	e.gone(good)
	bad := e.submit("alice@local.test", "carol@other.test")
	en := e.deferred(bad)
	o := en.Recipients[0].Last
	if o.Code != "TLSCertName" || o.TLS == nil || o.TLS.Policy != "verify" {
		t.Errorf("wrong name: %+v %+v", o, o.TLS)
	}
	if n := len(d.sink.all()); n != 1 {
		t.Errorf("%d deliveries, want 1", n)
	}
}

// The first MX does not answer; the second takes the message.
func TestNextMXOnConnectionFailure(t *testing.T) {
	d := startDest(t, "127.0.0.3", 0, nil, smtpd.MX, nil)
	e := newEnv(t, d.port(), nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2") // nothing listens there
	e.mx("example.test", 20, "mx2.example.test", "127.0.0.3")
	id := e.submit("alice@local.test", "bob@example.test")
	d.wait(t, 1)
	e.gone(id)
}

// A 4xx greeting sends the relay to the next MX too (RFC 5321 section 5.1).
func TestNextMXOnTemporaryGreeting(t *testing.T) {
	d := startDest(t, "127.0.0.3", 0, nil, smtpd.MX, nil)
	busy, err := net.Listen("tcp", "127.0.0.2:"+strconv.Itoa(d.port()))
	if err != nil {
		t.Skip("cannot listen on 127.0.0.2:", d.port(), err)
	}
	defer busy.Close()
	go func() {
		for {
			c, err := busy.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("421 4.3.2 busy, try later\r\n"))
			c.Close()
		}
	}()
	e := newEnv(t, d.port(), nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	e.mx("example.test", 20, "mx2.example.test", "127.0.0.3")
	id := e.submit("alice@local.test", "bob@example.test")
	d.wait(t, 1)
	e.gone(id)
}

// A destination that is down is retried with back-off and gets the
// message once when it comes back.
func TestDownThenUp(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	port := probe.Addr().(*net.TCPAddr).Port
	probe.Close()
	e := newEnv(t, port, nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	id := e.submit("alice@local.test", "bob@example.test")
	en := e.deferred(id)
	if o := en.Recipients[0].Last; o.Code != "TCPConnect" || en.NextAttempt.Before(en.Created) {
		t.Errorf("deferral: %+v next %v", o, en.NextAttempt)
	}
	d := startDest(t, "127.0.0.2", port, nil, smtpd.MX, nil)
	d.wait(t, 1)
	e.gone(id)
	time.Sleep(300 * time.Millisecond)
	if n := len(d.sink.all()); n != 1 {
		t.Errorf("delivered %d times", n)
	}
}

// A partial refusal bounces only the refused recipient, into the local
// sender's mailbox, as an RFC 3464 report carrying the server's reply.
func TestPartialRefusalBounces(t *testing.T) {
	d := startDest(t, "127.0.0.2", 0, nil, smtpd.MX, nil)
	e := newEnv(t, d.port(), nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	id := e.submit("alice@local.test", "bob@example.test", "nobody@example.test")
	got := d.wait(t, 1)
	e.gone(id)
	if to := got[0].env.To; len(to) != 1 || to[0] != "bob@example.test" {
		t.Errorf("delivered to %v", to)
	}
	if strings.Contains(got[0].body, "Return-Path:") || strings.Contains(got[0].body, "Delivered-To:") {
		t.Errorf("relayed mail got final-delivery headers:\n%s", got[0].body)
	}
	bounces := waitMail(t, e.local, "alice", 1)
	b := bounces[0]
	// The notice's final delivery: from the null sender, to the sender.
	if !strings.HasPrefix(b, "Return-Path: <>\r\nDelivered-To: alice@local.test\r\n") {
		t.Errorf("bounce does not begin with its final delivery's headers:\n%s", b)
	}
	for _, want := range []string{"report-type=delivery-status", "Final-Recipient: rfc822; nobody@example.test",
		"Action: failed", "Status: 5.1.1", "Diagnostic-Code: smtp; 550 5.1.1", "Remote-MTA: dns; mx1.example.test",
		"Subject: Undelivered Mail Returned to Sender", "From: \"Mail Delivery System\" <MAILER-DAEMON@relay.test>"} {
		if !strings.Contains(b, want) {
			t.Errorf("bounce lacks %q:\n%s", want, b)
		}
	}
	if strings.Contains(b, "Final-Recipient: rfc822; bob@example.test") {
		t.Errorf("the delivered recipient was bounced too")
	}
}

// A queued message for a local recipient is delivered into its mailbox
// with the final delivery's Return-Path and Delivered-To, and only there.
func TestLocalDeliveryHeaders(t *testing.T) {
	d := startDest(t, "127.0.0.2", 0, nil, smtpd.MX, nil)
	e := newEnv(t, d.port(), nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	id := e.submit("carol@far.test", "Alice@LOCAL.test", "bob@example.test")
	got := d.wait(t, 1)
	e.gone(id)
	b := waitMail(t, e.local, "alice", 1)[0]
	if !strings.HasPrefix(b, "Return-Path: <carol@far.test>\r\nDelivered-To: alice@local.test\r\nReceived: from client.test") {
		t.Errorf("local copy:\n%s", b)
	}
	if strings.Contains(got[0].body, "Return-Path:") {
		t.Errorf("relayed copy:\n%s", got[0].body)
	}
}

// waitMail waits for n messages in a local mailbox.
func waitMail(t *testing.T, l *testLocal, box string, n int) []string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		m := l.mail(t, box)
		if len(m) >= n {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %d messages, want %d", box, len(m), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A null MX (RFC 7505) bounces at once without any connection; a remote
// sender's bounce goes into the queue from the null sender.
func TestNullMX(t *testing.T) {
	e := newEnv(t, 2, nil)
	e.dns.Add("nomail.test. 300 IN MX 0 .")
	e.mx("far.test", 10, "mx.far.test", "127.0.0.2") // port 2: the notice waits in the queue
	id := e.submit("carol@far.test", "bob@nomail.test")
	e.gone(id)
	entries := waitQueue(t, e, func(l []*queue.Entry) bool { return len(l) == 1 })
	n := entries[0]
	if n.From != "" || n.Recipients[0].Addr != "carol@far.test" {
		t.Fatalf("bounce envelope %+v", n.Envelope)
	}
	body := readBody(t, e, n.ID)
	if !strings.Contains(body, "Status: 5.1.10") || !strings.Contains(body, "null MX") {
		t.Errorf("bounce:\n%s", body)
	}
}

func waitQueue(t *testing.T, e *env, ok func([]*queue.Entry) bool) []*queue.Entry {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		l, err := e.q.List(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if ok(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("queue never as wanted: %d entries", len(l))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func readBody(t *testing.T, e *env, id queue.ID) string {
	t.Helper()
	rc, err := e.q.Body(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := rc.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}

// A bounce that fails is never bounced (no notice to the null sender, RFC
// 5321 section 6.1), so two relays cannot bounce at each other forever.
func TestNoBounceToNullSender(t *testing.T) {
	e := newEnv(t, 2, nil)
	e.dns.Add("nomail.test. 300 IN MX 0 .")
	id := e.submit("", "bob@nomail.test")
	e.gone(id)
	time.Sleep(200 * time.Millisecond)
	if l, _ := e.q.List(context.Background()); len(l) != 0 {
		t.Fatalf("a notice was queued for a message from <>: %+v", l[0].Envelope)
	}
}

// A message that has passed too many servers is a loop and bounces
// without being sent again.
func TestMailLoop(t *testing.T) {
	d := startDest(t, "127.0.0.2", 0, nil, smtpd.MX, nil)
	e := newEnv(t, d.port(), nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	env := &queue.Envelope{From: "alice@local.test", Recipients: []queue.Recipient{{Addr: "bob@example.test"}}}
	body := strings.Repeat("Received: from a by b; Thu, 03 Dec 2026 15:00:00 +0000\r\n", maxHops+1) + "Subject: loop\r\n\r\nx\r\n"
	id, err := e.q.Enqueue(context.Background(), env, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	e.gone(id)
	b := waitMail(t, e.local, "alice", 1)[0]
	if !strings.Contains(b, "Status: 5.4.6") {
		t.Errorf("bounce:\n%s", b)
	}
	if n := len(d.sink.all()); n != 0 {
		t.Errorf("a looping message was sent on")
	}
}

// The smarthost gets all mail, with AUTH, and only under TLS.
func TestSmarthostWithAuth(t *testing.T) {
	cert, pool := certFor(t, "smarthost.test")
	d := startDest(t, "127.0.0.2", 0, cert, smtpd.Submission, nil)
	e := newEnv(t, 0, func(o *Options) {
		o.RootCAs = pool
		o.Resolver = staticResolver{"smarthost.test": "127.0.0.2"}
		o.Smarthost = &Smarthost{Addr: "smarthost.test:" + strconv.Itoa(d.port()), Policy: Verify,
			Auth: &sasl.Credentials{Username: "smart", Password: "secret"}}
	})
	id := e.submit("alice@local.test", "bob@example.test", "carol@other.test")
	got := d.wait(t, 1)
	e.gone(id)
	if got[0].env.AuthUser != "smart" || len(got[0].env.To) != 2 {
		t.Errorf("smarthost got %+v", got[0].env)
	}
	if _, err := New(Options{Hostname: "h", Queue: e.q, Resolver: e.opts.Resolver,
		Smarthost: &Smarthost{Addr: "x:25", Auth: &sasl.Credentials{Username: "u"}, Policy: May}}); err == nil {
		t.Error("a smarthost with credentials and policy may was accepted")
	}
}

// staticResolver resolves names to one address each and has no MX.
type staticResolver map[string]string

func (s staticResolver) LookupMX(context.Context, string) (*resolve.MX, error) {
	return nil, errors.New("no MX in this test")
}

func (s staticResolver) LookupAddrs(_ context.Context, host string) ([]netip.Addr, bool, error) {
	a, ok := s[host]
	if !ok {
		return nil, false, errors.New("no such host in this test")
	}
	return []netip.Addr{netip.MustParseAddr(a)}, false, nil
}

// Several messages to one destination share a session.
func TestConnectionReuse(t *testing.T) {
	d := startDest(t, "127.0.0.2", 0, nil, smtpd.MX, nil)
	e := newEnv(t, d.port(), func(o *Options) { o.Workers = 1; o.ConnectionReuse = 5 * time.Second })
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	for range 5 {
		e.submit("alice@local.test", "bob@example.test")
	}
	d.wait(t, 5)
	if n := d.conns.Load(); n != 1 {
		t.Errorf("5 messages took %d connections, want 1", n)
	}
}

// A destination that never answers, or answers without end, costs a
// deferral with a clear reason and the message stays queued.
func TestHostileDestinations(t *testing.T) {
	for name, serve := range map[string]func(c net.Conn){
		"silent": func(c net.Conn) { time.Sleep(10 * time.Second) },
		"endless": func(c net.Conn) {
			c.Write([]byte("220 hi\r\n"))
			line := []byte("250-" + strings.Repeat("x", 60) + "\r\n")
			for {
				if _, err := c.Write(line); err != nil {
					return
				}
			}
		},
		"long line": func(c net.Conn) {
			c.Write([]byte("220 " + strings.Repeat("y", 1<<20)))
		},
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.2:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					go func() { defer c.Close(); serve(c) }()
				}
			}()
			e := newEnv(t, ln.Addr().(*net.TCPAddr).Port, func(o *Options) { o.CommandTimeout = 500 * time.Millisecond })
			e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
			id := e.submit("alice@local.test", "bob@example.test")
			en := e.deferred(id)
			o := en.Recipients[0].Last
			if en.Recipients[0].Status != queue.Pending || o.Code == "" || o.Detail == "" {
				t.Errorf("outcome %+v", o)
			}
			t.Logf("%s: %s (%s)", name, o.Code, o.Detail)
		})
	}
}

// A broken TLS handshake under may is followed by a plain-text session to
// the same host, and only under may; encrypt defers instead.
func TestBrokenHandshake(t *testing.T) {
	broken := &tls.Certificate{}
	d := startDest(t, "127.0.0.2", 0, broken, smtpd.MX, func(s *smtpd.Server) {
		s.TLSConfig = &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return nil, errors.New("no certificate today")
		}}
	})
	e := newEnv(t, d.port(), func(o *Options) { o.Routes = []Route{{Domain: "enc.test", Policy: Encrypt}} })
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	e.mx("enc.test", 10, "mx1.enc.test", "127.0.0.2")
	id := e.submit("alice@local.test", "bob@example.test")
	got := d.wait(t, 1)
	e.gone(id)
	if !strings.Contains(got[0].body, "with ESMTP id") {
		t.Errorf("expected the plain-text retry:\n%s", got[0].body)
	}
	enc := e.submit("alice@local.test", "bob@enc.test")
	en := e.deferred(enc)
	if o := en.Recipients[0].Last; !strings.HasPrefix(o.Code, "TLS") {
		t.Errorf("encrypt after a broken handshake: %+v", o)
	}
	if n := len(d.sink.all()); n != 1 {
		t.Errorf("%d deliveries, want only the may one", n)
	}
}

// A message older than its lifetime fails with the last error, and its
// sender hears about the delay first.
func TestDelayThenExpiry(t *testing.T) {
	e := newEnv(t, 2, func(o *Options) { o.Lifetime = 2 * time.Second; o.DelayNotice = 500 * time.Millisecond })
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2") // port 2: nothing listens
	id := e.submit("alice@local.test", "bob@example.test")
	e.gone(id)
	mail := waitMail(t, e.local, "alice", 2)
	delay, bounce := mail[0], mail[1]
	if !strings.Contains(delay, "Action: delayed") || !strings.Contains(delay, "Will-Retry-Until:") {
		t.Errorf("delay notice:\n%s", delay)
	}
	if !strings.Contains(bounce, "Action: failed") || !strings.Contains(bounce, "Status: 5.4.7") ||
		!strings.Contains(bounce, "expired") {
		t.Errorf("expiry bounce:\n%s", bounce)
	}
}

// An MX host with only an IPv6 address is reached over IPv6.
func TestIPv6MX(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	ln.Close()
	d := startDest(t, "::1", 0, nil, smtpd.MX, nil)
	e := newEnv(t, d.port(), nil)
	e.dns.Add("example.test. 300 IN MX 10 mx6.example.test.", "mx6.example.test. 300 IN AAAA ::1")
	id := e.submit("alice@local.test", "bob@example.test")
	got := d.wait(t, 1)
	e.gone(id)
	if !strings.Contains(got[0].body, "[IPv6:::1]") {
		t.Errorf("not received over IPv6:\n%s", got[0].body)
	}
}

func (s staticResolver) LookupTLSA(context.Context, string, int) (*resolve.TLSA, error) {
	return &resolve.TLSA{}, nil
}

// A recipient that would inject a command (CR LF, NUL) never reaches the
// server; it bounces with a clear reason, and the others are delivered.
func TestHostileRecipient(t *testing.T) {
	d := startDest(t, "127.0.0.2", 0, nil, smtpd.MX, nil)
	e := newEnv(t, d.port(), nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	id := e.submit("alice@local.test", "bob@example.test>\r\nRCPT TO:<carol@example.test", "bob@example.test")
	got := d.wait(t, 1)
	e.gone(id)
	if to := got[0].env.To; len(to) != 1 || to[0] != "bob@example.test" {
		t.Errorf("delivered to %q", to)
	}
	b := waitMail(t, e.local, "alice", 1)[0]
	if !strings.Contains(b, "Status: 5.1.3") || !strings.Contains(b, "invalid address") {
		t.Errorf("bounce:\n%s", b)
	}
}

// enqueueDSN enqueues a message from alice@local.test whose envelope
// carries DSN parameters, as smtpd would have received them (xtext kept).
func (e *env) enqueueDSN(rcpts ...queue.Recipient) queue.ID {
	e.t.Helper()
	env := &queue.Envelope{From: "alice@local.test", AuthUser: "alice", Ret: "HDRS", EnvID: "env+2B1", Recipients: rcpts}
	id, err := e.q.Enqueue(context.Background(), env, strings.NewReader("From: alice@local.test\r\nSubject: dsn\r\n\r\nhello\r\n"))
	if err != nil {
		e.t.Fatal(err)
	}
	return id
}

// A relay passes the submitter's DSN parameters on to a next hop that
// offers DSN (RFC 3461 section 5.2.1), each recipient's own, ORCPT as it
// was received; the next hop then reports, so this relay sends no success
// notice of its own.
func TestDSNParametersPassedOn(t *testing.T) {
	d := startDest(t, "127.0.0.2", 0, nil, smtpd.MX, nil)
	e := newEnv(t, d.port(), nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	id := e.enqueueDSN(
		queue.Recipient{Addr: "bob@example.test", Notify: "SUCCESS,FAILURE", ORcpt: "rfc822;bob+2Bx@example.test"},
		queue.Recipient{Addr: "carol@example.test", Notify: "NEVER"},
		queue.Recipient{Addr: "dave@example.test"})
	got := d.wait(t, 1)[0].env
	e.gone(id)
	if got.Ret != "HDRS" || got.EnvID != "env+2B1" {
		t.Errorf("next hop got RET %q ENVID %q", got.Ret, got.EnvID)
	}
	want := map[string][2]string{"bob@example.test": {"SUCCESS,FAILURE", "rfc822;bob+2Bx@example.test"},
		"carol@example.test": {"NEVER", ""}, "dave@example.test": {"", ""}}
	for _, rc := range got.Rcpts {
		if w := want[rc.Addr]; rc.Notify != w[0] || rc.ORcpt != w[1] {
			t.Errorf("%s: next hop got NOTIFY %q ORCPT %q, want %q", rc.Addr, rc.Notify, rc.ORcpt, w)
		}
	}
	if len(got.Rcpts) != 3 {
		t.Errorf("next hop got %d recipients", len(got.Rcpts))
	}
	if n := len(e.local.mail(t, "alice")); n != 0 {
		t.Errorf("%d notices although the next hop reports on delivery", n)
	}
}

// A next hop without DSN gets no DSN parameters and still gets the
// message; a recipient who asked for NOTIFY=SUCCESS then hears from this
// relay that the message was relayed (RFC 3461 section 5.2.2), the others
// hear nothing.
func TestRelayedNoticeWhenNextHopLacksDSN(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		p.Send("220 mx1.example.test ESMTP\r\n")
		p.Expect("EHLO")
		p.Send("250 mx1.example.test\r\n")
		for _, want := range []string{"MAIL FROM:<alice@local.test>", "RCPT TO:<bob@example.test>", "RCPT TO:<dave@example.test>"} {
			if got := p.Expect(want); got != want {
				t.Errorf("next hop got %q, want exactly %q", got, want)
			}
			p.Send("250 ok\r\n")
		}
		p.Expect("DATA")
		p.Send("354 go\r\n")
		for {
			if l := p.Expect(""); l == "." || l == "" {
				break
			}
		}
		p.Send("250 2.0.0 queued as Q1\r\n")
	})
	_, port, _ := net.SplitHostPort(addr)
	portN, _ := strconv.Atoi(port)
	e := newEnv(t, portN, nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.1")
	id := e.enqueueDSN(
		queue.Recipient{Addr: "bob@example.test", Notify: "SUCCESS", ORcpt: "rfc822;bob+2Bx@example.test"},
		queue.Recipient{Addr: "dave@example.test"})
	<-done
	e.gone(id)
	notices := waitMail(t, e.local, "alice", 1)
	n := notices[0]
	for _, want := range []string{"Subject: Successful Mail Delivery Report", "Final-Recipient: rfc822; bob@example.test",
		"Original-Recipient: rfc822; bob+x@example.test", "Action: relayed", "Status: 2.0.0",
		"Remote-MTA: dns; mx1.example.test", "Diagnostic-Code: smtp; 250 2.0.0 queued as Q1", "Original-Envelope-Id: env+1"} {
		if !strings.Contains(n, want) {
			t.Errorf("notice lacks %q:\n%s", want, n)
		}
	}
	if strings.Contains(n, "dave@example.test") {
		t.Errorf("dave asked for no success notice:\n%s", n)
	}
	if strings.Contains(n, "hello") {
		t.Errorf("RET=HDRS, yet the notice carries the body:\n%s", n)
	}
}

// A final delivery here answers NOTIFY=SUCCESS with a "delivered" notice
// (RFC 3464 section 2.3.3), with no remote MTA to name.
func TestDeliveredNoticeForLocalRecipient(t *testing.T) {
	e := newEnv(t, 25, nil)
	id := e.enqueueDSN(queue.Recipient{Addr: "alice@local.test", Notify: "SUCCESS"})
	e.gone(id)
	mail := waitMail(t, e.local, "alice", 2)
	var notice string
	for _, m := range mail {
		if strings.Contains(m, "report-type=delivery-status") {
			notice = m
		}
	}
	for _, want := range []string{"Final-Recipient: rfc822; alice@local.test", "Action: delivered", "Status: 2.0.0"} {
		if !strings.Contains(notice, want) {
			t.Errorf("notice lacks %q:\n%s", want, notice)
		}
	}
	if strings.Contains(notice, "Remote-MTA:") {
		t.Errorf("a local delivery names a remote MTA:\n%s", notice)
	}
}
