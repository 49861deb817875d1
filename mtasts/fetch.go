package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/resolve"
	"github.com/mailsec/mailsec/tlsrpt"
)

// defaultTimeout is the one minute section 3.3 suggests for the HTTPS
// GET; policy hosts are asked to answer within it, so a shorter bound
// would fail compliant hosts.
const defaultTimeout = time.Minute

// The RFC 8460 section 4.3.2.2 result types of policy discovery failures,
// as FailureType returns them, for TLS reports.
const (
	// FailureFetchError: the policy could not be retrieved (host
	// unreachable, timeout, HTTP status other than 200, redirect).
	FailureFetchError = string(tlsrpt.STSPolicyFetchError)
	// FailurePolicyInvalid: a policy was retrieved but is not valid.
	FailurePolicyInvalid = string(tlsrpt.STSPolicyInvalid)
	// FailureWebPKIInvalid: the policy host's certificate did not
	// validate.
	FailureWebPKIInvalid = string(tlsrpt.STSWebPKIInvalid)
)

// ErrNoPolicy is the cause of the errors LookupTXT returns when the domain
// has no usable _mta-sts TXT record, which section 3.1 says means that the
// domain has no available policy. Test with errors.Is.
var ErrNoPolicy = errors.New("no MTA-STS policy")

// TXTLookup is the DNS query the Fetcher needs. *resolve.Resolver
// satisfies it. Query must return an error matching
// resolve.ErrNoSuchDomain for NXDOMAIN and a temporary error for every
// other failure, as resolve.Resolver.Query does.
type TXTLookup interface {
	Query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error)
}

// Fetcher discovers and fetches MTA-STS policies. The zero value queries
// the system's name server and verifies the policy host against the
// system's roots. A Fetcher is safe for concurrent use.
type Fetcher struct {
	// Resolver answers the _mta-sts TXT queries; nil means a
	// resolve.Resolver with its defaults.
	Resolver TXTLookup
	// HTTPClient, when set, replaces the client Fetch builds, and
	// RootCAs and DialContext are then unused. Fetch still refuses
	// redirected answers, statuses other than 200, other media types than
	// text/plain and bodies over MaxPolicySize, and bounds the request by
	// Timeout. The client must verify the certificate against the
	// mta-sts.<domain> name, as section 3.3 requires.
	//
	// The client Fetch builds verifies the certificate against RootCAs
	// and mta-sts.<domain>, requires TLS 1.2 or later (section 7.2),
	// follows no redirects and uses no proxy, no cookies and no HTTP
	// cache (section 3.3).
	HTTPClient *http.Client
	// RootCAs are the roots the policy host's certificate must chain to;
	// nil means the system's, the WebPKI that section 3.3 expects.
	RootCAs *x509.CertPool
	// Timeout bounds one policy fetch, HTTPS connection included; 0 means
	// one minute (section 3.3).
	Timeout time.Duration
	// DialContext connects to the policy host; nil means a net.Dialer,
	// which resolves mta-sts.<domain> with the system resolver. Tests
	// point it at a loopback server.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)
	// Port is the HTTPS port of policy hosts; 0 means 443. Only tests
	// have a reason to set it.
	Port int
}

// LookupTXT queries _mta-sts.<domain> TXT and returns the policy id of the
// record (RFC 8461 section 3.1). Records that do not begin with "v=STSv1"
// are discarded; unless exactly one is left and it is valid, the domain has
// no available policy and the error matches ErrNoPolicy. So does NXDOMAIN.
// Other failures (SERVFAIL, timeouts) are temporary errors from the
// resolver: they say nothing about the policy.
//
// A CNAME at _mta-sts.<domain> is followed: section 8.2 lets a domain
// delegate its policy that way.
func (f *Fetcher) LookupTXT(ctx context.Context, domain string) (string, error) {
	d, err := canonicalDomain(domain)
	if err != nil {
		return "", err
	}
	name := "_mta-sts." + d
	var r TXTLookup = &resolve.Resolver{}
	if f.Resolver != nil {
		r = f.Resolver
	}
	resp, err := r.Query(ctx, name, dns.TypeTXT)
	if errors.Is(err, resolve.ErrNoSuchDomain) {
		return "", noPolicy("%s does not exist", name)
	}
	if err != nil {
		return "", err
	}
	var records []string
	for _, rr := range resolve.Chase(resp, name, dns.TypeTXT) {
		// Section 3.1: the strings of one record are concatenated
		// without spaces.
		if txt, ok := rr.(*dns.TXT); ok {
			if s := strings.Join(txt.Txt, ""); isSTSv1(s) {
				records = append(records, s)
			}
		}
	}
	switch len(records) {
	case 0:
		return "", noPolicy("%s has no v=STSv1 TXT record", name)
	case 1:
	default:
		// Two records could name two policies; section 3.1 gives up
		// rather than guess.
		return "", noPolicy("%s has %d v=STSv1 TXT records", name, len(records))
	}
	id, ok := parseTXT(records[0])
	if !ok {
		return "", noPolicy("%s has an invalid TXT record %q", name, records[0])
	}
	return id, nil
}

// isSTSv1 reports whether a TXT record begins with the version field, the
// test section 3.1 applies before counting records. "v=STSv10" does not.
func isSTSv1(s string) bool {
	rest, ok := strings.CutPrefix(s, "v=STSv1")
	return ok && (rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t')
}

// parseTXT checks a record against the ABNF of section 3.1, the version
// first, then fields separated by ";" with optional WSP around it, and
// returns its id: 1 to 32 letters and digits. Unknown fields are
// extensions and ignored; of repeated fields the first counts (section
// 3.2).
func parseTXT(s string) (id string, ok bool) {
	fields := strings.Split(strings.TrimPrefix(s, "v=STSv1"), ";")
	if strings.Trim(fields[0], " \t") != "" || len(fields) < 2 {
		return "", false
	}
	for i, field := range fields[1:] {
		field = strings.Trim(field, " \t")
		if field == "" && i == len(fields)-2 {
			break // the optional final delimiter
		}
		name, value, found := strings.Cut(field, "=")
		if !found || !validKey(name) || !validExtValue(value) {
			return "", false
		}
		if name == "id" && id == "" {
			if len(value) > 32 || strings.ContainsFunc(value, func(r rune) bool { return r > 0x7f || !alnum(byte(r)) }) {
				return "", false
			}
			id = value
		}
	}
	return id, id != ""
}

// validExtValue checks sts-ext-value: visible ASCII except "=" and ";".
func validExtValue(v string) bool {
	for _, c := range []byte(v) {
		if c < 0x21 || c > 0x7e || c == '=' || c == ';' {
			return false
		}
	}
	return v != ""
}

func noPolicy(format string, args ...any) *mailsec.Error {
	return mailsec.Errorf(mailsec.DNS, "mta-sts", ErrNoPolicy, format, args...)
}

// Fetch fetches and parses the policy of domain from
// https://mta-sts.<domain>/.well-known/mta-sts.txt (RFC 8461 section 3.3).
// It does not look up the TXT record, so the policy's ID is empty; its
// Fetched is the current time. Cache.Get does both steps in the order of
// section 3.
//
// Errors are *mailsec.Error; FailureType tells how TLS reports name them.
func (f *Fetcher) Fetch(ctx context.Context, domain string) (*Policy, error) {
	d, err := canonicalDomain(domain)
	if err != nil {
		return nil, err
	}
	host := "mta-sts." + d
	if f.Port != 0 {
		host = net.JoinHostPort(host, strconv.Itoa(f.Port))
	}
	url := "https://" + host + "/.well-known/mta-sts.txt"
	timeout := f.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Data, "mta-sts", err, "cannot build the request for %s", url)
	}
	client := f.HTTPClient
	if client == nil {
		client = f.client()
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fetchError(ctx, url, err)
	}
	defer resp.Body.Close()
	// Section 3.3: "HTTP 3xx redirects MUST NOT be followed". The client
	// built here does not; a caller's client might, and the answer then
	// comes from another URL.
	if got := resp.Request.URL.String(); got != url {
		return nil, mailsec.Errorf(mailsec.Protocol, "mta-sts", nil, "%s redirected to %s", url, got)
	}
	// Section 3.3: only a 200 answer is a policy; a 3xx lands here too.
	if resp.StatusCode != http.StatusOK {
		return nil, mailsec.Errorf(mailsec.Protocol, "mta-sts", nil, "%s answered %s", url, resp.Status)
	}
	// Section 3.2: the media type must be text/plain, so that a web
	// server hosting users' files cannot be made to serve a policy in an
	// HTML page or an image.
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, invalid("%s answered with Content-Type %q, not text/plain", url, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err == nil && ctx.Err() != nil {
		// net/http may end a body cut short by the deadline with a plain
		// EOF. A policy missing its last mx lines would still parse and
		// then reject the domain's other MX hosts, so it must not count.
		err = ctx.Err()
	}
	if err != nil {
		return nil, fetchError(ctx, url, err)
	}
	p, err := ParsePolicy(body)
	var e *mailsec.Error
	if errors.As(err, &e) {
		// Name the URL in the detail; ParsePolicy cannot know it.
		e.Detail = url + ": " + e.Detail
	}
	if err != nil {
		return nil, err
	}
	p.Fetched = time.Now()
	return p, nil
}

// client builds the HTTP client of section 3.3. Keep-alives are off:
// a policy host is contacted once per policy, and idle connections would
// only hold sockets open.
func (f *Fetcher) client() *http.Client {
	dial := f.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return &http.Client{
		Transport: &http.Transport{
			// No Proxy: the connection must go to the policy host
			// through DialContext, whatever the environment says.
			DialContext:            dial,
			TLSClientConfig:        &tls.Config{RootCAs: f.RootCAs, MinVersion: tls.VersionTLS12},
			DisableKeepAlives:      true,
			MaxResponseHeaderBytes: 64 << 10,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			// Return the 3xx itself, which Fetch then refuses.
			return http.ErrUseLastResponse
		},
	}
}

// fetchError turns an error of the HTTPS exchange into a *mailsec.Error
// whose code tells a certificate problem from a network one, which is the
// distinction TLS reports make (sts-webpki-invalid against
// sts-policy-fetch-error).
func fetchError(ctx context.Context, url string, err error) error {
	var (
		hostErr x509.HostnameError
		certErr *tls.CertificateVerificationError
		alert   tls.AlertError
		record  tls.RecordHeaderError
		netErr  net.Error
		opErr   *net.OpError
	)
	code, what := mailsec.Socket, "network error"
	switch {
	case errors.As(err, &hostErr):
		code, what = mailsec.TLSCertName, "the certificate does not name the policy host"
	case errors.As(err, &certErr):
		code, what = mailsec.TLSCertificate, "the certificate is not valid"
	case errors.Is(ctx.Err(), context.Canceled):
		code, what = mailsec.Canceled, "canceled"
	case ctx.Err() != nil || errors.As(err, &netErr) && netErr.Timeout():
		code, what = mailsec.Timeout, "no complete answer in time"
	case errors.As(err, &alert), errors.As(err, &record):
		code, what = mailsec.TLSProtocol, "TLS handshake failed"
	case errors.As(err, &opErr) && opErr.Op == "dial":
		code, what = mailsec.TCPConnect, "cannot connect"
	}
	return mailsec.Errorf(code, "mta-sts", err, "fetching %s: %s", url, what)
}

// FailureType returns the RFC 8460 result type (section 4.3.2.2) of a
// policy fetch failure returned by Fetch: FailureWebPKIInvalid for a
// certificate that did not validate, FailurePolicyInvalid for a body that
// is not a valid text/plain policy, FailureFetchError for the rest. It
// returns "" for a nil error.
func FailureType(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, mailsec.TLSCertName), errors.Is(err, mailsec.TLSCertificate):
		return FailureWebPKIInvalid
	case errors.Is(err, ErrInvalidPolicy):
		return FailurePolicyInvalid
	}
	return FailureFetchError
}

// canonicalDomain returns domain in the form policies are looked up and
// cached under: lower case, A-labels (RFC 5890 section 2.3.2.1: DNS and
// the HTTPS host carry A-labels), no trailing dot. The policy host name
// built from it must still be a valid name.
func canonicalDomain(domain string) (string, error) {
	d := strings.TrimSuffix(domain, ".")
	if strings.ContainsFunc(d, func(r rune) bool { return r >= 0x80 }) {
		a, err := idna.Lookup.ToASCII(d)
		if err != nil {
			return "", mailsec.Errorf(mailsec.Data, "mta-sts", err, "invalid internationalized domain name %q", domain)
		}
		d = a
	}
	d = strings.ToLower(d)
	if !validDomain(d) || len("_mta-sts."+d) > 253 {
		return "", mailsec.Errorf(mailsec.Data, "mta-sts", nil, "invalid domain name %q", domain)
	}
	return d, nil
}
