package relay

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/mtasts"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/smtpd"
	"github.com/mailsec/mailsec/tlsrpt"
)

// spki311 is the TLSA "3 1 1" record data of a certificate.
func spki311(c *tls.Certificate) string {
	sum := sha256.Sum256(c.Leaf.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// daneEnv is a relay trusting the test DNS server's AD bit, which the
// server sets on every answer (the zone counts as signed).
func daneEnv(t *testing.T, port int, tune func(*Options)) *env {
	e := newEnv(t, port, func(o *Options) {
		o.DNSSEC = true
		if tune != nil {
			tune(o)
		}
	})
	e.dns.SetADAll(true)
	return e
}

// A signed TLSA 3 1 1 record that matches: delivered, and the record says
// DANE did it.
func TestDANEMatch(t *testing.T) {
	cert, _ := certFor(t, "mx1.example.test")
	d := startDest(t, "127.0.0.2", 0, cert, smtpd.MX, nil)
	e := daneEnv(t, d.port(), nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	e.dns.Add(fmt.Sprintf("_%d._tcp.mx1.example.test. 300 IN TLSA 3 1 1 %s", d.port(), spki311(cert)))
	id := e.submit("alice@local.test", "bob@example.test")
	d.wait(t, 1)
	e.gone(id)
}

// A mismatching record defers, and the message never goes out in plain
// text or to an unverified server.
func TestDANEMismatchDefers(t *testing.T) {
	cert, _ := certFor(t, "mx1.example.test")
	other, _ := certFor(t, "mx1.example.test")
	d := startDest(t, "127.0.0.2", 0, cert, smtpd.MX, nil)
	e := daneEnv(t, d.port(), nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	e.dns.Add(fmt.Sprintf("_%d._tcp.mx1.example.test. 300 IN TLSA 3 1 1 %s", d.port(), spki311(other)))
	id := e.submit("alice@local.test", "bob@example.test")
	en := e.deferred(id)
	o := en.Recipients[0].Last
	if o.Code != "TLSCertificate" || o.TLS.Policy != "dane" {
		t.Errorf("outcome %+v %+v", o, o.TLS)
	}
	if len(d.sink.all()) != 0 {
		t.Error("delivered despite the TLSA mismatch")
	}
}

// TLSA published but STARTTLS gone from the EHLO reply (stripped by a man
// in the middle): the mail waits.
func TestDANEStripped(t *testing.T) {
	cert, _ := certFor(t, "mx1.example.test")
	d := startDest(t, "127.0.0.2", 0, nil, smtpd.MX, nil)
	e := daneEnv(t, d.port(), nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	e.dns.Add(fmt.Sprintf("_%d._tcp.mx1.example.test. 300 IN TLSA 3 1 1 %s", d.port(), spki311(cert)))
	id := e.submit("alice@local.test", "bob@example.test")
	en := e.deferred(id)
	if o := en.Recipients[0].Last; o.Code != "StartTLSUnavailable" {
		t.Errorf("outcome %+v", o)
	}
	if len(d.sink.all()) != 0 {
		t.Error("delivered in plain text despite TLSA")
	}
}

// A TLSA lookup that fails (a bogus signature makes a validating resolver
// answer SERVFAIL) defers rather than downgrades.
func TestDANELookupFailureDefers(t *testing.T) {
	d := startDest(t, "127.0.0.2", 0, nil, smtpd.MX, nil)
	e := daneEnv(t, d.port(), nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	e.dns.SetRcode(fmt.Sprintf("_%d._tcp.mx1.example.test.", d.port()), dns.RcodeServerFailure)
	id := e.submit("alice@local.test", "bob@example.test")
	en := e.deferred(id)
	if o := en.Recipients[0].Last; !strings.Contains(o.Detail, "TLSA lookup") {
		t.Errorf("outcome %+v", o)
	}
	if len(d.sink.all()) != 0 {
		t.Error("delivered although the TLSA lookup failed")
	}
}

// Unsigned answers: no DANE, may applies; dane-only waits instead.
func TestUnsignedZone(t *testing.T) {
	cert, _ := certFor(t, "mx1.example.test")
	d := startDest(t, "127.0.0.2", 0, cert, smtpd.MX, nil)
	e := newEnv(t, d.port(), func(o *Options) {
		o.DNSSEC = true
		o.Routes = []Route{{Domain: "strict.test", Policy: DaneOnly}}
	})
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	e.mx("strict.test", 10, "mx1.strict.test", "127.0.0.2")
	e.dns.Add(fmt.Sprintf("_%d._tcp.mx1.example.test. 300 IN TLSA 3 1 1 %s", d.port(), strings.Repeat("00", 32)))
	id := e.submit("alice@local.test", "bob@example.test")
	d.wait(t, 1)
	e.gone(id)
	strict := e.submit("alice@local.test", "bob@strict.test")
	en := e.deferred(strict)
	if o := en.Recipients[0].Last; !strings.Contains(o.Detail, "dane-only") {
		t.Errorf("outcome %+v", o)
	}
}

// stsServer serves an MTA-STS policy over HTTPS on loopback, with a
// certificate for mta-sts.<domain>.
func stsServer(t *testing.T, domain, policy string) *mtasts.Fetcher {
	cert, pool := wiretest.SelfSigned(t, "mta-sts."+domain)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprint(w, policy)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, _ := strconv.Atoi(port)
	return &mtasts.Fetcher{RootCAs: pool, Port: p, Timeout: 2 * time.Second,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var dl net.Dialer
			return dl.DialContext(ctx, network, srv.Listener.Addr().String())
		}}
}

// MTA-STS enforce: an MX the policy does not name is skipped, and one it
// names must present a certificate valid for its name.
func TestMTASTSEnforce(t *testing.T) {
	good, pool := certFor(t, "mx2.example.test")
	skipped := startDest(t, "127.0.0.2", 0, good, smtpd.MX, nil)
	right := startDest(t, "127.0.0.3", skipped.port(), good, smtpd.MX, nil)
	f := stsServer(t, "example.test", "version: STSv1\nmode: enforce\nmx: mx2.example.test\nmx: *.wrong.test\nmax_age: 86400\n")
	e := newEnv(t, skipped.port(), func(o *Options) {
		o.RootCAs = pool
		o.MTASTS = &mtasts.Cache{Fetcher: f}
	})
	f.Resolver = e.opts.Resolver.(mtasts.TXTLookup)
	e.dns.Add(`_mta-sts.example.test. 300 IN TXT "v=STSv1; id=1"`)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2") // better preference, not in the policy
	e.mx("example.test", 20, "mx2.example.test", "127.0.0.3")
	id := e.submit("alice@local.test", "bob@example.test")
	right.wait(t, 1)
	e.gone(id)
	if len(skipped.sink.all()) != 0 {
		t.Error("the MX not named by the policy got the message")
	}
}

// MTA-STS enforce with a certificate that does not name the MX: the mail
// waits, and the TLS report counts the failure.
func TestMTASTSEnforceWrongCertificate(t *testing.T) {
	bad, pool := certFor(t, "wrong.example.test")
	d := startDest(t, "127.0.0.2", 0, bad, smtpd.MX, nil)
	f := stsServer(t, "example.test", "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmax_age: 86400\n")
	reports := &tlsrpt.Store{Dir: t.TempDir()}
	e := newEnv(t, d.port(), func(o *Options) {
		o.RootCAs = pool
		o.MTASTS = &mtasts.Cache{Fetcher: f}
		o.TLSReports = reports
	})
	f.Resolver = e.opts.Resolver.(mtasts.TXTLookup)
	e.dns.Add(`_mta-sts.example.test. 300 IN TXT "v=STSv1; id=1"`)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	id := e.submit("alice@local.test", "bob@example.test")
	en := e.deferred(id)
	if o := en.Recipients[0].Last; o.Code != "TLSCertName" || o.TLS.Policy != "mta-sts" {
		t.Errorf("outcome %+v %+v", o, o.TLS)
	}
	if len(d.sink.all()) != 0 {
		t.Error("delivered to a server whose certificate the MTA-STS policy does not allow")
	}
	rep, err := reports.Report("example.test", time.Now(), "relay.test", "postmaster@relay.test", "r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Policies) != 1 || rep.Policies[0].Policy.Type != tlsrpt.PolicySTS || rep.Policies[0].Summary.TotalFailure < 1 ||
		rep.Policies[0].FailureDetails[0].Result != tlsrpt.CertificateHostMismatch {
		t.Errorf("TLS report %+v", rep.Policies)
	}
}

// REQUIRETLS (RFC 8689): only over authenticated TLS to a server that
// keeps the requirement; otherwise the message bounces.
func TestRequireTLS(t *testing.T) {
	cert, pool := certFor(t, "mx1.example.test")
	d := startDest(t, "127.0.0.2", 0, cert, smtpd.MX, nil)
	e := newEnv(t, d.port(), func(o *Options) {
		o.RootCAs = pool
		o.Routes = []Route{{Domain: "example.test", Policy: Verify}}
	})
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	e.mx("may.test", 10, "mx1.example.test", "127.0.0.2")
	submit := func(to string) queue.ID {
		env := &queue.Envelope{From: "alice@local.test", RequireTLS: true, Recipients: []queue.Recipient{{Addr: to}}}
		id, err := e.q.Enqueue(context.Background(), env, strings.NewReader("Subject: secret\r\n\r\nx\r\n"))
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	ok := submit("bob@example.test")
	got := d.wait(t, 1)
	e.gone(ok)
	if !got[0].env.RequireTLS {
		t.Error("REQUIRETLS was not passed on")
	}
	weak := submit("bob@may.test")
	e.gone(weak)
	b := waitMail(t, e.local, "alice", 1)[0]
	if !strings.Contains(b, "Status: 5.7.30") {
		t.Errorf("bounce:\n%s", b)
	}
}

// "TLS-Required: No" (RFC 8689 section 3) sets the recipient's policies
// aside: a TLSA mismatch no longer stops the message, which still goes
// over STARTTLS.
func TestTLSRequiredNo(t *testing.T) {
	cert, _ := certFor(t, "mx1.example.test")
	other, _ := certFor(t, "mx1.example.test")
	d := startDest(t, "127.0.0.2", 0, cert, smtpd.MX, nil)
	e := daneEnv(t, d.port(), nil)
	e.mx("example.test", 10, "mx1.example.test", "127.0.0.2")
	e.dns.Add(fmt.Sprintf("_%d._tcp.mx1.example.test. 300 IN TLSA 3 1 1 %s", d.port(), spki311(other)))
	env := &queue.Envelope{From: "alice@local.test", Recipients: []queue.Recipient{{Addr: "bob@example.test"}}}
	id, err := e.q.Enqueue(context.Background(), env, strings.NewReader("TLS-Required: No\r\nSubject: x\r\n\r\nx\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := d.wait(t, 1)
	e.gone(id)
	if !strings.Contains(got[0].body, "with ESMTPS") {
		t.Errorf("not over TLS:\n%s", got[0].body)
	}
}
