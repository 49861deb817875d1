package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/dnstest"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/resolve"
)

// rfcExample is the policy of RFC 8461 section 3.2, with the CRLF line
// ends the RFC describes.
const rfcExample = "version: STSv1\r\n" +
	"mode: enforce\r\n" +
	"mx: mail.example.com\r\n" +
	"mx: *.example.net\r\n" +
	"mx: backupmx.example.com\r\n" +
	"max_age: 604800\r\n"

func TestParsePolicyRFCExample(t *testing.T) {
	p, err := ParsePolicy([]byte(rfcExample))
	if err != nil {
		t.Fatal(err)
	}
	want := &Policy{
		Version: "STSv1",
		Mode:    ModeEnforce,
		MX:      []string{"mail.example.com", "*.example.net", "backupmx.example.com"},
		MaxAge:  604800 * time.Second,
	}
	if !equalPolicy(p, want) {
		t.Errorf("got %+v, want %+v", p, want)
	}
}

func equalPolicy(a, b *Policy) bool {
	return a.Version == b.Version && a.Mode == b.Mode && slices.Equal(a.MX, b.MX) &&
		a.MaxAge == b.MaxAge && a.ID == b.ID && a.Fetched.Equal(b.Fetched)
}

func TestParsePolicyAccepted(t *testing.T) {
	tests := []struct {
		name, text string
		want       Policy
	}{
		{"LF only", "version: STSv1\nmode: testing\nmx: mx.example.test\nmax_age: 86400\n",
			Policy{Mode: ModeTesting, MX: []string{"mx.example.test"}, MaxAge: 86400 * time.Second}},
		{"CRLF and LF mixed, no final line end", "version: STSv1\r\nmode: enforce\nmx: mx.example.test\r\nmax_age: 60",
			Policy{Mode: ModeEnforce, MX: []string{"mx.example.test"}, MaxAge: time.Minute}},
		{"any order, tabs, trailing WSP, blank lines", "\nmax_age:\t60 \r\n\r\nmx:   mx.example.test\t\nmode: enforce\nversion: STSv1\n\n",
			Policy{Mode: ModeEnforce, MX: []string{"mx.example.test"}, MaxAge: time.Minute}},
		{"unknown keys are ignored", "version: STSv1\nmode: enforce\nfuture_key.v2: some value here\nmx: mx.example.test\nmax_age: 60\n",
			Policy{Mode: ModeEnforce, MX: []string{"mx.example.test"}, MaxAge: time.Minute}},
		// Section 3.2: of a repeated field other than mx, the first counts.
		{"duplicate mode: the first counts", "version: STSv1\nmode: testing\nmode: enforce\nmx: mx.example.test\nmax_age: 60\n",
			Policy{Mode: ModeTesting, MX: []string{"mx.example.test"}, MaxAge: time.Minute}},
		{"duplicate max_age: the first counts", "version: STSv1\nmode: enforce\nmax_age: 60\nmax_age: 0\nmx: mx.example.test\n",
			Policy{Mode: ModeEnforce, MX: []string{"mx.example.test"}, MaxAge: time.Minute}},
		{"duplicate version, later one ignored even if wrong", "version: STSv1\nversion: STSv2\nmode: enforce\nmx: mx.example.test\nmax_age: 60\n",
			Policy{Mode: ModeEnforce, MX: []string{"mx.example.test"}, MaxAge: time.Minute}},
		{"mx normalized", "version: STSv1\nmode: enforce\nmx: MX.Example.TEST.\nmx: *.Example.NET\nmax_age: 60\n",
			Policy{Mode: ModeEnforce, MX: []string{"mx.example.test", "*.example.net"}, MaxAge: time.Minute}},
		{"max_age 0", "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 0\n",
			Policy{Mode: ModeEnforce, MX: []string{"mx.example.test"}}},
		{"max_age maximum", "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 31557600\n",
			Policy{Mode: ModeEnforce, MX: []string{"mx.example.test"}, MaxAge: MaxMaxAge}},
		{"max_age above maximum is lowered", "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 9999999999\n",
			Policy{Mode: ModeEnforce, MX: []string{"mx.example.test"}, MaxAge: MaxMaxAge}},
		{"mode none needs no mx", "version: STSv1\nmode: none\nmax_age: 86400\n",
			Policy{Mode: ModeNone, MaxAge: 86400 * time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.text))
			if err != nil {
				t.Fatal(err)
			}
			tt.want.Version = Version
			if !equalPolicy(p, &tt.want) {
				t.Errorf("got %+v, want %+v", p, tt.want)
			}
		})
	}
}

func TestParsePolicyRejected(t *testing.T) {
	const rest = "mode: enforce\nmx: mx.example.test\nmax_age: 60\n"
	tests := []struct{ name, text string }{
		{"empty", ""},
		{"missing version", rest},
		{"wrong version", "version: STSv2\n" + rest},
		{"version in lower case", "version: stsv1\n" + rest},
		{"missing mode", "version: STSv1\nmx: mx.example.test\nmax_age: 60\n"},
		{"unknown mode", "version: STSv1\nmode: reject\nmx: mx.example.test\nmax_age: 60\n"},
		{"mode is case-sensitive", "version: STSv1\nmode: Enforce\nmx: mx.example.test\nmax_age: 60\n"},
		{"missing max_age", "version: STSv1\nmode: enforce\nmx: mx.example.test\n"},
		{"empty max_age", "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age:\n"},
		{"negative max_age", "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: -1\n"},
		{"signed max_age", "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: +60\n"},
		{"max_age with unit", "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 60s\n"},
		{"max_age of 11 digits", "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 10000000000\n"},
		{"huge max_age", "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 99999999999999999999999999\n"},
		{"enforce without mx", "version: STSv1\nmode: enforce\nmax_age: 60\n"},
		{"testing without mx", "version: STSv1\nmode: testing\nmax_age: 60\n"},
		{"empty mx", "version: STSv1\nmx:\n" + rest},
		{"bare wildcard mx", "version: STSv1\nmx: *\n" + rest},
		{"partial wildcard mx", "version: STSv1\nmx: mx*.example.test\n" + rest},
		{"inner wildcard mx", "version: STSv1\nmx: mx.*.example.test\n" + rest},
		{"empty label in mx", "version: STSv1\nmx: mx..example.test\n" + rest},
		{"mx with a space", "version: STSv1\nmx: mx.example.test mx2.example.test\n" + rest},
		{"mx with a port", "version: STSv1\nmx: mx.example.test:25\n" + rest},
		{"non-ASCII mx", "version: STSv1\nmx: m\u00e9l.example.test\n" + rest},
		// A bare CR would make "mode: testing" one line for this parser
		// and two for another; refusing is the only safe reading.
		{"bare CR", "version: STSv1\nmode: testing\rmode: enforce\nmx: mx.example.test\nmax_age: 60\n"},
		{"CR CR LF", "version: STSv1\r\r\n" + rest},
		{"line without colon", "version: STSv1\n" + rest + "garbage\n"},
		{"space before colon", "version : STSv1\n" + rest},
		{"indented key", "version: STSv1\n mode: enforce\nmx: mx.example.test\nmax_age: 60\n"},
		{"HTML", "<html><body>version: STSv1</body></html>\n"},
		{"over 64 KiB", "version: STSv1\n" + rest + strings.Repeat("x: padding\n", MaxPolicySize/11+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := ParsePolicy([]byte(tt.text))
			if err == nil {
				t.Fatalf("accepted as %+v", p)
			}
			if !errors.Is(err, ErrInvalidPolicy) || !errors.Is(err, mailsec.Protocol) {
				t.Errorf("error %v: not ErrInvalidPolicy with code Protocol", err)
			}
		})
	}
}

func TestMatches(t *testing.T) {
	p := &Policy{MX: []string{"mail.example.com", "*.example.net", "MX.Example.ORG."}}
	tests := []struct {
		host string
		want bool
	}{
		{"mail.example.com", true},
		{"MAIL.EXAMPLE.COM", true},
		{"mail.example.com.", true},
		{"mx.example.org", true},
		{"other.example.com", false},
		{"example.com", false},
		{"ail.example.com", false},
		// Section 4.1's examples: the wildcard is one whole label.
		{"mx1.example.net", true},
		{"MX1.example.net.", true},
		{"example.net", false},
		{"a.b.example.net", false},
		{".example.net", false},
		{"mx1.example.net.evil.test", false},
		{"mx1example.net", false},
		{"", false},
		{".", false},
	}
	for _, tt := range tests {
		if got := p.Matches(tt.host); got != tt.want {
			t.Errorf("Matches(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
	// "*" is no host label: the pattern's own text is not a match.
	if p.Matches("*.example.net") {
		t.Error(`"*.example.net" matched`)
	}
}

func TestLookupTXT(t *testing.T) {
	srv := dnstest.Start(t)
	srv.Add(
		`_mta-sts.one.test. 300 IN TXT "v=STSv1; id=20160831085700Z;"`,
		`_mta-sts.two.test. 300 IN TXT "v=STSv1; id=first"`,
		`_mta-sts.two.test. 300 IN TXT "v=STSv1; id=second"`,
		`_mta-sts.other.test. 300 IN TXT "v=spf1 -all"`,
		`_mta-sts.other.test. 300 IN TXT "v=STSv10; id=notours"`,
		`_mta-sts.other.test. 300 IN TXT "v=STSv1;id=kept"`,
		`_mta-sts.onlyother.test. 300 IN TXT "something else"`,
		`_mta-sts.split.test. 300 IN TXT "v=STSv1; i" "d=joined123"`,
		`_mta-sts.ext.test. 300 IN TXT "v=STSv1 ;\tfoo=bar ; id=abc ; id=ignored"`,
		`_mta-sts.badid.test. 300 IN TXT "v=STSv1; id=has-hyphen;"`,
		`_mta-sts.longid.test. 300 IN TXT "v=STSv1; id=`+strings.Repeat("a", 33)+`"`,
		`_mta-sts.noid.test. 300 IN TXT "v=STSv1;"`,
		`_mta-sts.emptyfield.test. 300 IN TXT "v=STSv1;; id=abc"`,
		`_mta-sts.delegated.test. 300 IN CNAME _mta-sts.provider.test.`,
		`_mta-sts.provider.test. 300 IN TXT "v=STSv1; id=provider1"`,
		`_mta-sts.fail.test. 300 IN TXT "v=STSv1; id=unreachable"`,
		`mx.nodata.test. 300 IN A 192.0.2.1`,
		`_mta-sts.xn--bcher-kva.test. 300 IN TXT "v=STSv1; id=idna"`,
	)
	srv.SetRcode("_mta-sts.fail.test.", dns.RcodeServerFailure)
	f := &Fetcher{Resolver: &resolve.Resolver{Server: srv.Addr(), Timeout: 2 * time.Second}}

	tests := []struct {
		domain, id string
		noPolicy   bool
	}{
		{domain: "one.test", id: "20160831085700Z"},
		{domain: "ONE.test.", id: "20160831085700Z"},
		{domain: "two.test", noPolicy: true},
		{domain: "other.test", id: "kept"},
		{domain: "onlyother.test", noPolicy: true},
		{domain: "split.test", id: "joined123"},
		{domain: "ext.test", id: "abc"},
		{domain: "badid.test", noPolicy: true},
		{domain: "longid.test", noPolicy: true},
		{domain: "noid.test", noPolicy: true},
		{domain: "emptyfield.test", noPolicy: true},
		{domain: "delegated.test", id: "provider1"},
		{domain: "absent.test", noPolicy: true},
		{domain: "nodata.test", noPolicy: true},
		{domain: "Bücher.test", id: "idna"},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			id, err := f.LookupTXT(t.Context(), tt.domain)
			switch {
			case tt.noPolicy && !errors.Is(err, ErrNoPolicy):
				t.Fatalf("got id %q, error %v; want ErrNoPolicy", id, err)
			case !tt.noPolicy && err != nil:
				t.Fatal(err)
			case id != tt.id:
				t.Errorf("id %q, want %q", id, tt.id)
			}
		})
	}

	t.Run("SERVFAIL is temporary", func(t *testing.T) {
		_, err := f.LookupTXT(t.Context(), "fail.test")
		if err == nil || errors.Is(err, ErrNoPolicy) || resolve.Permanent(err) || !errors.Is(err, mailsec.DNS) {
			t.Errorf("error %v: want a temporary DNS error", err)
		}
	})
	t.Run("invalid domain", func(t *testing.T) {
		if _, err := f.LookupTXT(t.Context(), "bad domain.test"); !errors.Is(err, mailsec.Data) {
			t.Errorf("error %v: want code Data", err)
		}
	})
}

// policyHost is an HTTPS server on 127.0.0.1 standing for the policy
// hosts. Its answer can be changed while it runs, and it counts requests.
type policyHost struct {
	srv  *httptest.Server
	pool *x509.CertPool // trusts the server's certificate alone
	port int

	mu          sync.Mutex
	status      int
	contentType string
	body        string
	requests    map[string]int // by path
	dialed      []string
}

const goodPolicy = "version: STSv1\nmode: enforce\nmx: mx.example.test\nmax_age: 86400\n"

// startPolicyHost serves with a certificate for certName; handler, when
// set, replaces the configurable answer.
func startPolicyHost(t *testing.T, certName string, handler http.HandlerFunc) *policyHost {
	t.Helper()
	cert, pool := wiretest.SelfSigned(t, certName)
	h := &policyHost{pool: pool, status: http.StatusOK, contentType: "text/plain; charset=utf-8",
		body: goodPolicy, requests: map[string]int{}}
	h.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.requests[r.URL.Path]++
		status, ct, body := h.status, h.contentType, h.body
		h.mu.Unlock()
		if handler != nil {
			handler(w, r)
			return
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		w.Write([]byte(body))
	}))
	// The handshake failures the tests cause on purpose are not news.
	h.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	h.srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	h.srv.StartTLS()
	t.Cleanup(h.srv.Close)
	_, port, err := net.SplitHostPort(h.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	h.port, _ = strconv.Atoi(port)
	return h
}

func (h *policyHost) set(status int, contentType, body string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.status, h.contentType, h.body = status, contentType, body
}

func (h *policyHost) count(path string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.requests[path]
}

// fetcher returns a Fetcher whose connections to any policy host reach
// this server, and which trusts only the server's certificate.
func (h *policyHost) fetcher(r TXTLookup) *Fetcher {
	addr := h.srv.Listener.Addr().String()
	return &Fetcher{
		Resolver: r,
		RootCAs:  h.pool,
		Port:     h.port,
		Timeout:  5 * time.Second,
		DialContext: func(ctx context.Context, network, target string) (net.Conn, error) {
			h.mu.Lock()
			h.dialed = append(h.dialed, target)
			h.mu.Unlock()
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
}

const wellKnown = "/.well-known/mta-sts.txt"

func TestFetchGood(t *testing.T) {
	h := startPolicyHost(t, "mta-sts.example.test", nil)
	f := h.fetcher(nil)
	before := time.Now()
	p, err := f.Fetch(t.Context(), "Example.TEST.")
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode != ModeEnforce || !slices.Equal(p.MX, []string{"mx.example.test"}) || p.MaxAge != 24*time.Hour || p.ID != "" {
		t.Errorf("policy %+v", p)
	}
	if p.Fetched.Before(before) || p.Fetched.After(time.Now()) {
		t.Errorf("Fetched %v not the time of the fetch", p.Fetched)
	}
	if n := h.count(wellKnown); n != 1 {
		t.Errorf("%d requests for %s, want 1", n, wellKnown)
	}
	// The connection went to the policy host of section 3.3, named in
	// lower case, and its certificate was checked against that name.
	want := net.JoinHostPort("mta-sts.example.test", strconv.Itoa(h.port))
	if !slices.Equal(h.dialed, []string{want}) {
		t.Errorf("dialed %v, want [%s]", h.dialed, want)
	}
}

func TestFetchFailures(t *testing.T) {
	tests := []struct {
		name     string
		certName string
		setup    func(h *policyHost, f *Fetcher)
		handler  http.HandlerFunc
		code     mailsec.Code
		failure  string
	}{
		{name: "wrong certificate name", certName: "www.example.test",
			code: mailsec.TLSCertName, failure: FailureWebPKIInvalid},
		{name: "untrusted CA", certName: "mta-sts.example.test",
			setup: func(h *policyHost, f *Fetcher) { f.RootCAs = x509.NewCertPool() },
			code:  mailsec.TLSCertificate, failure: FailureWebPKIInvalid},
		{name: "404", certName: "mta-sts.example.test",
			setup: func(h *policyHost, f *Fetcher) { h.set(http.StatusNotFound, "text/plain", goodPolicy) },
			code:  mailsec.Protocol, failure: FailureFetchError},
		{name: "500", certName: "mta-sts.example.test",
			setup: func(h *policyHost, f *Fetcher) { h.set(http.StatusInternalServerError, "text/plain", goodPolicy) },
			code:  mailsec.Protocol, failure: FailureFetchError},
		{name: "redirect", certName: "mta-sts.example.test",
			handler: func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == wellKnown {
					http.Redirect(w, r, "/elsewhere", http.StatusFound)
					return
				}
				w.Header().Set("Content-Type", "text/plain")
				w.Write([]byte(goodPolicy))
			},
			code: mailsec.Protocol, failure: FailureFetchError},
		{name: "HTML content type", certName: "mta-sts.example.test",
			setup: func(h *policyHost, f *Fetcher) { h.set(http.StatusOK, "text/html", goodPolicy) },
			code:  mailsec.Protocol, failure: FailurePolicyInvalid},
		{name: "no content type", certName: "mta-sts.example.test",
			handler: func(w http.ResponseWriter, r *http.Request) {
				w.Header()["Content-Type"] = nil // no sniffing either
				w.Write([]byte(goodPolicy))
			},
			code: mailsec.Protocol, failure: FailurePolicyInvalid},
		{name: "body too big", certName: "mta-sts.example.test",
			setup: func(h *policyHost, f *Fetcher) {
				h.set(http.StatusOK, "text/plain", goodPolicy+strings.Repeat("x: padding\n", MaxPolicySize/11+1))
			},
			code: mailsec.Protocol, failure: FailurePolicyInvalid},
		{name: "invalid policy", certName: "mta-sts.example.test",
			setup: func(h *policyHost, f *Fetcher) { h.set(http.StatusOK, "text/plain", "version: STSv1\nmode: enforce\n") },
			code:  mailsec.Protocol, failure: FailurePolicyInvalid},
		{name: "server slow to answer", certName: "mta-sts.example.test",
			setup:   func(h *policyHost, f *Fetcher) { f.Timeout = 200 * time.Millisecond },
			handler: func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() },
			code:    mailsec.Timeout, failure: FailureFetchError},
		{name: "server slow to send the body", certName: "mta-sts.example.test",
			setup: func(h *policyHost, f *Fetcher) { f.Timeout = 200 * time.Millisecond },
			handler: func(w http.ResponseWriter, r *http.Request) {
				// Headers sent, body withheld: the timeout must cover the
				// whole exchange, not only the connection.
				w.Header().Set("Content-Type", "text/plain")
				w.Write([]byte("version: STSv1\n"))
				w.(http.Flusher).Flush()
				<-r.Context().Done()
			},
			code: mailsec.Timeout, failure: FailureFetchError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := startPolicyHost(t, tt.certName, tt.handler)
			f := h.fetcher(nil)
			if tt.setup != nil {
				tt.setup(h, f)
			}
			start := time.Now()
			p, err := f.Fetch(t.Context(), "example.test")
			if err == nil {
				t.Fatalf("fetched %+v", p)
			}
			t.Log(err)
			if FailureType(nil) != "" {
				t.Error("FailureType(nil) is not empty")
			}
			if !errors.Is(err, tt.code) {
				t.Errorf("error %v: code %v, want %v", err, mailsec.CodeOf(err), tt.code)
			}
			if got := FailureType(err); got != tt.failure {
				t.Errorf("FailureType(%v) = %q, want %q", err, got, tt.failure)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			if n := h.count("/elsewhere"); n != 0 {
				t.Errorf("redirect followed %d times", n)
			}
		})
	}
}

// TestFetchCallerClientRedirect checks that a redirect is refused also
// when the caller's client follows it.
func TestFetchCallerClientRedirect(t *testing.T) {
	h := startPolicyHost(t, "mta-sts.example.test", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == wellKnown {
			http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(goodPolicy))
	})
	f := h.fetcher(nil)
	f.HTTPClient = &http.Client{Transport: &http.Transport{
		DialContext:     f.DialContext,
		TLSClientConfig: &tls.Config{RootCAs: h.pool},
	}}
	if p, err := f.Fetch(t.Context(), "example.test"); err == nil || FailureType(err) != FailureFetchError {
		t.Errorf("got %+v, %v; want a fetch error", p, err)
	}
}

// cacheEnv is a recipient domain example.test with DNS and a policy host,
// and a Cache on a clock the test moves.
type cacheEnv struct {
	t     *testing.T
	dns   *dnstest.Server
	host  *policyHost
	now   time.Time
	cache *Cache
}

func newCacheEnv(t *testing.T, path string) *cacheEnv {
	e := &cacheEnv{t: t, dns: dnstest.Start(t), host: startPolicyHost(t, "mta-sts.example.test", nil),
		now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	e.setID("id1")
	e.cache = e.newCache(path)
	return e
}

func (e *cacheEnv) newCache(path string) *Cache {
	return &Cache{
		Fetcher: e.host.fetcher(&resolve.Resolver{Server: e.dns.Addr(), Timeout: 2 * time.Second}),
		Path:    path,
		Now:     func() time.Time { return e.now },
	}
}

// setID publishes a TXT record with id, or none for "".
func (e *cacheEnv) setID(id string) {
	e.t.Helper()
	e.dns.Remove("_mta-sts.example.test.", dns.TypeTXT)
	if id != "" {
		e.dns.Add(`_mta-sts.example.test. 300 IN TXT "v=STSv1; id=` + id + `"`)
	}
}

// get calls Get and checks the source, the mode of the policy (""
// for none), and the number of policy requests made so far.
func (e *cacheEnv) get(c *Cache, source Source, mode Mode, requests int) *Result {
	e.t.Helper()
	res, err := c.Get(e.t.Context(), "example.test")
	if err != nil {
		e.t.Fatal(err)
	}
	var got Mode
	if res.Policy != nil {
		got = res.Policy.Mode
	}
	if res.Source != source || got != mode {
		e.t.Errorf("source %q mode %q (err %v), want %q %q", res.Source, got, res.Err, source, mode)
	}
	if res.Source == SourceNone && res.Policy != nil {
		e.t.Errorf("source none with policy %+v", res.Policy)
	}
	if n := e.host.count(wellKnown); n != requests {
		e.t.Errorf("%d policy requests, want %d", n, requests)
	}
	return res
}

func TestCacheFetchThenCached(t *testing.T) {
	e := newCacheEnv(t, "")
	res := e.get(e.cache, SourceFetched, ModeEnforce, 1)
	if res.Policy.ID != "id1" || !res.Policy.Fetched.Equal(e.now) || res.Err != nil || res.FailureType != "" {
		t.Errorf("result %+v, policy %+v", res, res.Policy)
	}
	// The id has not changed: no new request, however often.
	e.now = e.now.Add(time.Hour)
	for range 3 {
		e.get(e.cache, SourceCache, ModeEnforce, 1)
	}
	// The result is a copy: changing it does not change the cache.
	res.Policy.MX[0] = "evil.test"
	if e.get(e.cache, SourceCache, ModeEnforce, 1).Policy.MX[0] != "mx.example.test" {
		t.Error("the cache shares its policy with the caller")
	}
}

func TestCacheIDChangeRefetches(t *testing.T) {
	e := newCacheEnv(t, "")
	e.get(e.cache, SourceFetched, ModeEnforce, 1)
	e.host.set(http.StatusOK, "text/plain", "version: STSv1\nmode: testing\nmx: *.example.test\nmax_age: 86400\n")
	e.setID("id2")
	res := e.get(e.cache, SourceFetched, ModeTesting, 2)
	if res.Policy.ID != "id2" || !res.Policy.Matches("mx2.example.test") {
		t.Errorf("policy %+v", res.Policy)
	}
	e.get(e.cache, SourceCache, ModeTesting, 2)
}

func TestCacheFailedRefreshKeepsPolicy(t *testing.T) {
	e := newCacheEnv(t, "")
	e.get(e.cache, SourceFetched, ModeEnforce, 1)
	// A new id announces a policy that cannot be fetched: the cached one
	// stays in force (section 5.1) and the failure is reported.
	e.setID("id2")
	e.host.set(http.StatusInternalServerError, "text/plain", "")
	res := e.get(e.cache, SourceCache, ModeEnforce, 2)
	if res.Err == nil || res.FailureType != FailureFetchError || res.Policy.ID != "id1" {
		t.Errorf("result %+v", res)
	}
	// Section 3.3: no new attempt for the same id within five minutes,
	// but the failure is still reported.
	e.now = e.now.Add(time.Minute)
	if res := e.get(e.cache, SourceCache, ModeEnforce, 2); res.FailureType != FailureFetchError {
		t.Errorf("result %+v", res)
	}
	// Another id is another policy: tried at once.
	e.setID("id3")
	e.get(e.cache, SourceCache, ModeEnforce, 3)
	// After five minutes the policy host is tried again, and now works.
	e.now = e.now.Add(5 * time.Minute)
	e.host.set(http.StatusOK, "text/plain", goodPolicy)
	if res := e.get(e.cache, SourceFetched, ModeEnforce, 4); res.Policy.ID != "id3" || res.Err != nil {
		t.Errorf("result %+v", res)
	}
}

func TestCacheTXTGone(t *testing.T) {
	e := newCacheEnv(t, "")
	e.get(e.cache, SourceFetched, ModeEnforce, 1)
	// Section 3.1: the TXT record missing does not remove the cached
	// policy; an attacker hiding it gains nothing.
	e.setID("")
	if res := e.get(e.cache, SourceCache, ModeEnforce, 1); !errors.Is(res.Err, ErrNoPolicy) {
		t.Errorf("Err %v, want ErrNoPolicy", res.Err)
	}
	// Nor does a failing DNS.
	e.dns.SetRcode("_mta-sts.example.test.", dns.RcodeServerFailure)
	if res := e.get(e.cache, SourceCache, ModeEnforce, 1); res.Err == nil || errors.Is(res.Err, ErrNoPolicy) {
		t.Errorf("Err %v, want a temporary error", res.Err)
	}
	// Once expired, the policy no longer applies.
	e.now = e.now.Add(24*time.Hour + time.Second)
	e.get(e.cache, SourceNone, "", 1)
}

func TestCacheExpiryRefetches(t *testing.T) {
	e := newCacheEnv(t, "")
	e.get(e.cache, SourceFetched, ModeEnforce, 1)
	e.now = e.now.Add(24 * time.Hour) // max_age reached, not exceeded
	e.get(e.cache, SourceCache, ModeEnforce, 1)
	e.now = e.now.Add(time.Second)
	res := e.get(e.cache, SourceFetched, ModeEnforce, 2)
	if !res.Policy.Fetched.Equal(e.now) {
		t.Errorf("Fetched %v, want %v", res.Policy.Fetched, e.now)
	}
	// Expired and the refresh fails: nothing applies any more.
	e.now = e.now.Add(25 * time.Hour)
	e.host.set(http.StatusNotFound, "text/plain", "")
	if res := e.get(e.cache, SourceNone, "", 3); res.FailureType != FailureFetchError {
		t.Errorf("result %+v", res)
	}
}

func TestCacheNoPolicy(t *testing.T) {
	e := newCacheEnv(t, "")
	e.setID("")
	if res := e.get(e.cache, SourceNone, "", 0); res.Err != nil || res.FailureType != "" {
		t.Errorf("result %+v", res)
	}
	// A temporary DNS failure with nothing cached is reported.
	e.dns.SetRcode("_mta-sts.example.test.", dns.RcodeServerFailure)
	if res := e.get(e.cache, SourceNone, "", 0); res.Err == nil {
		t.Error("no Err")
	}
	// A record but a certificate that does not validate: no policy, and
	// the failure type TLS reports need.
	e.dns.SetRcode("_mta-sts.example.test.", dns.RcodeSuccess)
	e.setID("id1")
	e.cache.Fetcher.RootCAs = x509.NewCertPool()
	if res := e.get(e.cache, SourceNone, "", 0); res.FailureType != FailureWebPKIInvalid {
		t.Errorf("result %+v", res)
	}
}

func TestCacheModeNoneReplaces(t *testing.T) {
	e := newCacheEnv(t, "")
	e.get(e.cache, SourceFetched, ModeEnforce, 1)
	// Section 8.3: the domain withdraws its policy by publishing mode
	// none under a new id.
	e.host.set(http.StatusOK, "text/plain", "version: STSv1\nmode: none\nmax_age: 3600\n")
	e.setID("id2")
	e.get(e.cache, SourceFetched, ModeNone, 2)
	// Then removes the records: the enforce policy must not come back.
	e.setID("")
	e.host.set(http.StatusNotFound, "text/plain", "")
	e.get(e.cache, SourceCache, ModeNone, 2)
	e.now = e.now.Add(2 * time.Hour)
	e.get(e.cache, SourceNone, "", 2)
}

func TestCachePersistence(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mta-sts.json")
	e := newCacheEnv(t, path)
	e.get(e.cache, SourceFetched, ModeEnforce, 1)
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	// A restart while an attacker hides the TXT record and the policy
	// host: the new Cache still knows the policy.
	e.setID("")
	e.host.set(http.StatusNotFound, "text/plain", "")
	c2 := e.newCache(path)
	res := e.get(c2, SourceCache, ModeEnforce, 1)
	if res.Policy.ID != "id1" || !res.Policy.Fetched.Equal(e.now) || res.Policy.MaxAge != 24*time.Hour ||
		!res.Policy.Matches("mx.example.test") || res.Policy.Version != Version {
		t.Errorf("policy %+v", res.Policy)
	}
	// Same id after a restart: still no fetch.
	e.setID("id1")
	e.get(e.newCache(path), SourceCache, ModeEnforce, 1)
	// Expired policies are dropped from the file too.
	e.now = e.now.Add(48 * time.Hour)
	e.setID("")
	e.get(c2, SourceNone, "", 1)
	e.get(e.newCache(path), SourceNone, "", 1)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "example.test") {
		t.Errorf("expired policy still in the file: %s", data)
	}
	// No temporary files are left behind.
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d files", len(entries))
	}
}

func TestCacheCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mta-sts.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newCacheEnv(t, path)
	if _, err := e.cache.Get(t.Context(), "example.test"); !errors.Is(err, mailsec.Config) {
		t.Errorf("error %v, want code Config", err)
	}
	if n := e.host.count(wellKnown); n != 0 {
		t.Errorf("%d requests", n)
	}
}

func TestCacheCanceled(t *testing.T) {
	e := newCacheEnv(t, "")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if res, err := e.cache.Get(ctx, "example.test"); !errors.Is(err, mailsec.Canceled) {
		t.Errorf("got %+v, %v; want code Canceled", res, err)
	}
	if _, err := e.cache.Get(t.Context(), "not a domain"); !errors.Is(err, mailsec.Data) {
		t.Errorf("error %v, want code Data", err)
	}
}

func TestCacheConcurrent(t *testing.T) {
	e := newCacheEnv(t, filepath.Join(t.TempDir(), "mta-sts.json"))
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			res, err := e.cache.Get(t.Context(), "example.test")
			if err != nil || res.Policy == nil || res.Policy.Mode != ModeEnforce {
				t.Errorf("got %+v, %v", res, err)
			}
		})
	}
	wg.Wait()
}
