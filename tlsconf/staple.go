package tlsconf

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mailsec/mailsec"
)

// Stapler attaches an OCSP response to a server's certificate (RFC 6066
// section 8, RFC 6961) so that clients learn its status without asking the
// responder themselves. It wraps a GetCertificate hook: the first handshake
// with a certificate that names a responder starts a fetch in the
// background, and later handshakes carry the response until it goes stale;
// it is fetched again when half of its validity has passed. A failed fetch
// is retried after a minute, and the handshakes in between go without a
// staple rather than with a stale one. It is safe for concurrent use.
type Stapler struct {
	get func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	log *slog.Logger

	mu     sync.Mutex
	states map[[sha256.Size]byte]*stapleState
}

// stapleState is what the stapler holds for one certificate. The leaf and
// its issuer are parsed once, when the certificate is first seen, rather
// than on every handshake; they stay nil for a certificate that cannot be
// stapled (no issuer in its chain, or no responder named).
type stapleState struct {
	leaf, issuer *x509.Certificate
	der          []byte    // the verified response, nil before the first success
	expires      time.Time // when der may no longer be sent
	refresh      time.Time // when to fetch again
	fetching     bool
	used         time.Time
}

// Retry and validity rules of the stapler.
const (
	stapleRetry = time.Minute
	// stapleFetchTimeout bounds one background fetch.
	stapleFetchTimeout = 30 * time.Second
	// stapleNoNextUpdate is how long a response without nextUpdate is
	// sent: the responder promises nothing, so it is renewed often.
	stapleNoNextUpdate = time.Hour
	// stapleForget drops a certificate not served for this long (one
	// replaced by a reload).
	stapleForget = 24 * time.Hour
)

// NewStapler wraps get, the server's own certificate hook; logger may be
// nil.
func NewStapler(get func(*tls.ClientHelloInfo) (*tls.Certificate, error), logger *slog.Logger) *Stapler {
	return &Stapler{get: get, log: mailsec.Logger(logger, mailsec.FacilityTLS),
		states: make(map[[sha256.Size]byte]*stapleState)}
}

// GetCertificate is the tls.Config hook: the wrapped certificate with the
// current response stapled, when there is one.
func (s *Stapler) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	cert, err := s.get(hello)
	if err != nil || cert == nil || len(cert.Certificate) == 0 {
		return cert, err
	}
	now := time.Now()
	key := sha256.Sum256(cert.Certificate[0])
	s.mu.Lock()
	st := s.states[key]
	if st == nil {
		s.forget(now)
		st = stapleStateFor(stapleChain(cert))
		s.states[key] = st
	}
	st.used = now
	if st.leaf == nil {
		s.mu.Unlock()
		return cert, nil
	}
	if !st.fetching && !now.Before(st.refresh) {
		st.fetching = true
		go s.refresh(st)
	}
	var der []byte
	if now.Before(st.expires) {
		der = st.der
	}
	s.mu.Unlock()
	if der == nil {
		return cert, nil
	}
	stapled := *cert
	stapled.OCSPStaple = der
	return &stapled, nil
}

// Fetch gets a response for cert now and keeps it for the handshakes to
// come; a server may call it at start so that the first clients get a
// staple too.
func (s *Stapler) Fetch(ctx context.Context, cert *tls.Certificate) error {
	leaf, issuer, err := stapleChain(cert)
	if err != nil {
		return err
	}
	der, resp, err := fetchStaple(ctx, leaf, issuer)
	s.mu.Lock()
	defer s.mu.Unlock()
	key := sha256.Sum256(cert.Certificate[0])
	st := s.states[key]
	if st == nil {
		st = stapleStateFor(leaf, issuer, nil)
		st.used = time.Now()
		s.states[key] = st
	}
	s.store(st, der, resp, err)
	return err
}

// stapleStateFor is a new state for a certificate with the leaf and issuer
// stapleChain found, leaving them nil when there is nothing to staple.
func stapleStateFor(leaf, issuer *x509.Certificate, err error) *stapleState {
	if err != nil || len(leaf.OCSPServer) == 0 {
		return &stapleState{}
	}
	return &stapleState{leaf: leaf, issuer: issuer}
}

// refresh fetches a response for st in the background; st.leaf and
// st.issuer never change once set, so they are read without the lock.
func (s *Stapler) refresh(st *stapleState) {
	ctx, cancel := context.WithTimeout(context.Background(), stapleFetchTimeout)
	defer cancel()
	der, resp, err := fetchStaple(ctx, st.leaf, st.issuer)
	if err != nil {
		s.log.Warn("cannot fetch an OCSP response to staple", "subject", st.leaf.Subject.String(), "err", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.store(st, der, resp, err)
}

// store records a fetch; the caller holds s.mu.
func (s *Stapler) store(st *stapleState, der []byte, resp *ocsp.Response, err error) {
	now := time.Now()
	st.fetching = false
	if err != nil {
		st.refresh = now.Add(stapleRetry)
		return
	}
	st.der, st.expires = der, resp.NextUpdate
	if resp.NextUpdate.IsZero() {
		st.expires = now.Add(stapleNoNextUpdate)
	}
	st.refresh = now.Add(st.expires.Sub(now) / 2)
}

// forget drops certificates no longer served; the caller holds s.mu.
func (s *Stapler) forget(now time.Time) {
	for k, st := range s.states {
		if now.Sub(st.used) > stapleForget {
			delete(s.states, k)
		}
	}
}

// stapleChain returns the leaf and its issuer, which must follow it in the
// certificate's chain.
func stapleChain(cert *tls.Certificate) (leaf, issuer *x509.Certificate, err error) {
	if len(cert.Certificate) < 2 {
		return nil, nil, mailsec.Errorf(mailsec.Config, "ocsp staple", nil, "the certificate chain lacks the issuer of the leaf")
	}
	leaf = cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, nil, mailsec.Errorf(mailsec.Config, "ocsp staple", err, "cannot parse the certificate")
		}
	}
	if issuer, err = x509.ParseCertificate(cert.Certificate[1]); err != nil {
		return nil, nil, mailsec.Errorf(mailsec.Config, "ocsp staple", err, "cannot parse the issuer certificate")
	}
	return leaf, issuer, nil
}

// fetchStaple asks the leaf's responders in turn and returns the first
// verified, fresh answer that knows the certificate. A revoked status is
// stapled too: it is the truth, and clients should hear it.
func fetchStaple(ctx context.Context, leaf, issuer *x509.Certificate) ([]byte, *ocsp.Response, error) {
	if len(leaf.OCSPServer) == 0 {
		return nil, nil, mailsec.Errorf(mailsec.Config, "ocsp staple", nil, "the certificate names no OCSP responder")
	}
	req, err := ocsp.CreateRequest(leaf, issuer, nil)
	if err != nil {
		return nil, nil, mailsec.Errorf(mailsec.Config, "ocsp staple", err, "cannot build the OCSP request")
	}
	var errs []string
	for _, u := range leaf.OCSPServer {
		der, err := fetch(ctx, revocationHTTP, u, "application/ocsp-request", req, maxOCSPResponse)
		if err != nil {
			errs = append(errs, u+": "+err.Error())
			continue
		}
		now := time.Now()
		resp, err := parseOCSP(der, leaf, issuer, now)
		if err != nil {
			errs = append(errs, u+": "+err.Error())
			continue
		}
		if why := fresh(resp.ThisUpdate, resp.NextUpdate, now); why != "" {
			errs = append(errs, u+": "+why)
			continue
		}
		if resp.Status == ocsp.Unknown {
			errs = append(errs, u+": the responder does not know the certificate")
			continue
		}
		return der, resp, nil
	}
	return nil, nil, mailsec.Errorf(mailsec.TLS, "ocsp staple", nil, "no usable OCSP response: %s", strings.Join(errs, "; "))
}
