package tlsconf

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/mailsec/mailsec"
)

// RevocationMode says which certificates of the verified chain are checked
// for revocation.
type RevocationMode uint8

const (
	// RevocationChain checks every certificate of the chain: CSMail/SSL's
	// SSLRevocationCheckAll, its default.
	RevocationChain RevocationMode = iota
	// RevocationLeaf checks only the server's own certificate: CSMail/SSL's
	// SSLRevocationCheckEnd.
	RevocationLeaf
	// RevocationOff checks nothing.
	RevocationOff
)

// ParseRevocationMode maps the CLI spellings "chain", "leaf" and "off".
func ParseRevocationMode(s string) (RevocationMode, error) {
	switch strings.ToLower(s) {
	case "", "chain":
		return RevocationChain, nil
	case "leaf":
		return RevocationLeaf, nil
	case "off":
		return RevocationOff, nil
	}
	return 0, mailsec.Errorf(mailsec.Config, "tls options", nil, "unknown revocation mode %q (off, leaf, chain)", s)
}

// Revocation are CSMail/SSL's revocation options (docs/requirements.md).
// The zero value is its default: every certificate of the chain, root included, is checked;
// a revoked one fails the handshake; a status that cannot be had does not.
type Revocation struct {
	// Mode picks the certificates checked.
	Mode RevocationMode
	// ExcludeRoot skips the trust anchor (SSLRevocationExcludeRoot): roots
	// rarely name a revocation source, so a strict check of a whole chain
	// usually wants this.
	ExcludeRoot bool
	// FailNoInfo fails the handshake when no source gives a usable status
	// for a certificate: none is named, the responder does not know it, or
	// its answer is stale or badly signed. It is CSMail/SSL's
	// SSLRevocationIgnoreNRC turned around, so that the zero value keeps
	// that option's default (ignore).
	FailNoInfo bool
	// FailOffline fails the handshake when a named source cannot be reached
	// and no other answers: SSLRevocationIgnoreRO turned around likewise.
	FailOffline bool
	// Cache keeps statuses between connections; nil means one cache shared
	// by the whole process.
	Cache *RevocationCache
	// Dialer, when set, carries the OCSP and CRL fetches: give it the proxy
	// the mail connection goes through, so that a user who hides behind a
	// proxy does not tell a responder from their own address which server
	// they talk to. nil dials directly.
	Dialer Dialer
}

// Dialer makes connections; dial.Dialer and golang.org/x/net/proxy's
// ContextDialer have this shape.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// DefaultRevocationTimeout bounds the revocation check of one handshake
// when the caller's context has no deadline (Options.Config).
const DefaultRevocationTimeout = 15 * time.Second

// RevocationStatus is the verdict on one certificate.
type RevocationStatus string

// The verdicts.
const (
	StatusGood    RevocationStatus = "good"
	StatusRevoked RevocationStatus = "revoked"
	// StatusNoInfo: no source gave a usable answer (CSMail/SSL's "NRC").
	StatusNoInfo RevocationStatus = "no-info"
	// StatusOffline: a named source could not be reached and no other
	// source answered (CSMail/SSL's "RO").
	StatusOffline RevocationStatus = "offline"
	// StatusNotChecked: the options leave this certificate out.
	StatusNotChecked RevocationStatus = "not-checked"
)

// The sources a status comes from.
const (
	SourceStapled = "stapled OCSP response"
	SourceOCSP    = "OCSP responder"
	SourceCRL     = "CRL"
)

// CertStatus is what the revocation check found for one certificate of the
// verified chain, leaf first.
type CertStatus struct {
	Subject string           `json:"subject"`
	Serial  string           `json:"serial"`
	Status  RevocationStatus `json:"status"`
	// Source and URL name whoever gave a good or revoked status.
	Source string `json:"source,omitempty"`
	URL    string `json:"url,omitempty"`
	// Cached is set when the status came from the cache, not this
	// handshake.
	Cached     bool      `json:"cached,omitempty"`
	ThisUpdate time.Time `json:"this_update,omitzero"`
	NextUpdate time.Time `json:"next_update,omitzero"`
	RevokedAt  time.Time `json:"revoked_at,omitzero"`
	// Reason is the RFC 5280 section 5.3.1 reason of a revocation.
	Reason string `json:"reason,omitempty"`
	// Tried lists each source asked and what it gave, in order.
	Tried []string `json:"tried,omitempty"`
}

// by names the source of a status for an error message.
func (s *CertStatus) by() string {
	switch s.Source {
	case SourceStapled:
		return "the OCSP response stapled by the server"
	case SourceOCSP:
		return "the OCSP responder " + s.URL
	}
	return "the CRL at " + s.URL
}

// reasonNames are the CRLReason values of RFC 5280 section 5.3.1 (7 is
// unused).
var reasonNames = map[int]string{0: "unspecified", 1: "keyCompromise", 2: "cACompromise",
	3: "affiliationChanged", 4: "superseded", 5: "cessationOfOperation", 6: "certificateHold",
	8: "removeFromCRL", 9: "privilegeWithdrawn", 10: "aACompromise"}

func reasonText(code int) string {
	if n, ok := reasonNames[code]; ok {
		return fmt.Sprintf("%s (%d)", n, code)
	}
	return fmt.Sprintf("reason code %d", code)
}

// checkRevocation checks the verified chain (leaf first, trust anchor last)
// and records the statuses for FactsOf. staple is the OCSP response the
// server sent for its leaf, if any.
func checkRevocation(ctx context.Context, opts Revocation, chain []*x509.Certificate, staple []byte) error {
	if opts.Mode == RevocationOff || len(chain) == 0 {
		return nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRevocationTimeout)
		defer cancel()
	}
	cache := opts.Cache
	if cache == nil {
		cache = sharedCache
	}
	hc := httpClient(opts.Dialer)
	statuses := make([]CertStatus, len(chain))
	var wg sync.WaitGroup
	for i, c := range chain {
		st := &statuses[i]
		st.Subject, st.Serial = c.Subject.String(), c.SerialNumber.Text(16)
		last := i == len(chain)-1
		switch {
		case opts.Mode == RevocationLeaf && i > 0:
			st.Status, st.Tried = StatusNotChecked, []string{"only the leaf is checked"}
			continue
		case last && opts.ExcludeRoot:
			st.Status, st.Tried = StatusNotChecked, []string{"the root is excluded"}
			continue
		}
		// The trust anchor is its own issuer: whatever revocation source
		// it names must be signed by its own key.
		issuer := c
		if !last {
			issuer = chain[i+1]
		}
		var stapled []byte
		if i == 0 {
			stapled = staple
		}
		wg.Go(func() { checkOne(ctx, hc, cache, c, issuer, stapled, st) })
	}
	wg.Wait()
	record(chain[0], statuses)
	return revocationError(opts, statuses)
}

// checkOne asks the sources in order (stapled response, OCSP responders,
// CRL distribution points) and stops at the first that says good or
// revoked.
func checkOne(ctx context.Context, hc *http.Client, cache *RevocationCache, cert, issuer *x509.Certificate, staple []byte, st *CertStatus) {
	key := cacheKey(cert, issuer)
	offline := false
	settle := func(source, url string, a answer) bool {
		what := source
		if url != "" {
			what += " " + url
		}
		st.Tried = append(st.Tried, what+": "+a.note)
		switch a.status {
		case StatusOffline:
			offline = true
		case StatusGood, StatusRevoked:
			st.Status, st.Source, st.URL = a.status, source, url
			st.ThisUpdate, st.NextUpdate = a.thisUpdate, a.nextUpdate
			if a.status == StatusRevoked {
				st.RevokedAt, st.Reason = a.revokedAt, reasonText(a.reason)
			}
			cache.put(key, *st)
			return true
		}
		return false
	}
	// The staple costs nothing and may be newer than the cache.
	if len(staple) > 0 && settle(SourceStapled, "", ocspAnswer(staple, cert, issuer, time.Now())) {
		return
	}
	if cached, ok := cache.get(key, time.Now()); ok {
		cached.Subject, cached.Serial, cached.Cached = st.Subject, st.Serial, true
		cached.Tried = append(st.Tried, cached.Tried...)
		*st = cached
		return
	}
	for _, u := range cert.OCSPServer {
		if settle(SourceOCSP, u, ocspQuery(ctx, hc, u, cert, issuer)) {
			return
		}
	}
	for _, u := range cert.CRLDistributionPoints {
		if settle(SourceCRL, u, crlQuery(ctx, hc, u, cert, issuer)) {
			return
		}
	}
	switch {
	case offline:
		st.Status = StatusOffline
	default:
		st.Status = StatusNoInfo
		if len(st.Tried) == 0 {
			st.Tried = []string{"the certificate names no OCSP responder and no CRL"}
		}
	}
}

// answer is what one source said.
type answer struct {
	status                 RevocationStatus
	thisUpdate, nextUpdate time.Time
	revokedAt              time.Time
	reason                 int
	note                   string
}

func noInfo(format string, args ...any) answer {
	return answer{status: StatusNoInfo, note: fmt.Sprintf(format, args...)}
}

// definitive turns a verified good or revoked status into an answer.
func definitive(revoked bool, thisUpdate, nextUpdate, revokedAt time.Time, reason int) answer {
	a := answer{status: StatusGood, thisUpdate: thisUpdate, nextUpdate: nextUpdate, note: "good"}
	if revoked {
		a.status, a.revokedAt, a.reason = StatusRevoked, revokedAt, reason
		a.note = "revoked on " + revokedAt.UTC().Format(time.RFC3339) + ", " + reasonText(reason)
	}
	return a
}

// clockSkew is how far in the future a thisUpdate may lie: the responder's
// clock and ours need not agree to the second.
const clockSkew = 5 * time.Minute

// fresh refuses a status that is not yet valid or past its nextUpdate
// (RFC 6960 section 4.2.2.1; RFC 5280 section 5.1.2.5): an attacker could
// otherwise replay an old "good" long after the revocation.
func fresh(thisUpdate, nextUpdate, now time.Time) string {
	if thisUpdate.After(now.Add(clockSkew)) {
		return "its thisUpdate " + thisUpdate.UTC().Format(time.RFC3339) + " lies in the future"
	}
	if !nextUpdate.IsZero() && now.After(nextUpdate) {
		return "stale: its nextUpdate " + nextUpdate.UTC().Format(time.RFC3339) + " has passed"
	}
	return ""
}

func revocationError(opts Revocation, statuses []CertStatus) error {
	for i := range statuses {
		if s := &statuses[i]; s.Status == StatusRevoked {
			return &mailsec.Error{Code: mailsec.TLSCertificate, Op: "handshake",
				Detail: fmt.Sprintf("certificate %q (serial %s) is revoked according to %s: revoked on %s, %s",
					s.Subject, s.Serial, s.by(), s.RevokedAt.UTC().Format(time.RFC3339), s.Reason)}
		}
	}
	for i := range statuses {
		s := &statuses[i]
		tried := strings.Join(s.Tried, "; ")
		switch {
		case s.Status == StatusNoInfo && opts.FailNoInfo:
			return &mailsec.Error{Code: mailsec.TLSCertificate, Op: "handshake",
				Detail: fmt.Sprintf("the revocation status of certificate %q (serial %s) cannot be determined and strict revocation checking is on: %s",
					s.Subject, s.Serial, tried)}
		case s.Status == StatusOffline && opts.FailOffline:
			return &mailsec.Error{Code: mailsec.TLSCertificate, Op: "handshake",
				Detail: fmt.Sprintf("the revocation server for certificate %q (serial %s) cannot be reached and strict revocation checking is on: %s",
					s.Subject, s.Serial, tried)}
		}
	}
	return nil
}

// verdicts holds the statuses of the latest check of each leaf still in
// use, so that FactsOf, which sees only the connection state, can report
// them. An entry goes when its certificate is collected.
var verdicts sync.Map // weak.Pointer[x509.Certificate] -> []CertStatus

func record(leaf *x509.Certificate, statuses []CertStatus) {
	k := weak.Make(leaf)
	if _, loaded := verdicts.Swap(k, statuses); !loaded {
		runtime.AddCleanup(leaf, func(k weak.Pointer[x509.Certificate]) { verdicts.Delete(k) }, k)
	}
}

// revocationOf returns the statuses recorded for a leaf.
func revocationOf(leaf *x509.Certificate) []CertStatus {
	v, ok := verdicts.Load(weak.Make(leaf))
	if !ok {
		return nil
	}
	return v.([]CertStatus)
}
