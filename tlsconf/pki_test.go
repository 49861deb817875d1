package tlsconf_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mailsec/mailsec/tlsconf"
)

// ca is a certificate with its key.
type ca struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// testPKI is a root, an intermediate with a delegated OCSP signer, and a
// loopback HTTP server that is both their OCSP responder and CRL server.
//
// Responder paths: /ocsp/good answers from the PKI's records; /ocsp/stale
// answers with a nextUpdate in the past; /ocsp/wrongkey signs with a key
// the issuer never certified; /ocsp/slow never answers; /ocsp/trylater
// answers tryLater. CRL paths: /crl/SERIAL is the CRL of the CA with that
// serial, /crl/SERIAL/stale the same past its nextUpdate.
type testPKI struct {
	t        *testing.T
	root     *ca
	inter    *ca
	delegate *ca // OCSP signer certified by inter
	roots    *x509.CertPool
	srv      *httptest.Server
	down     string // base URL of a port nobody listens on
	ocspHits atomic.Int32
	release  chan struct{} // closed when the test ends

	mu      sync.Mutex
	serial  int64
	issuers map[string]*ca // serial (hex) -> issuer
	cas     map[string]*ca // serial (hex) -> the certificate itself
	revoked map[string]int // serial (hex) -> reason
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{t: t, issuers: map[string]*ca{}, cas: map[string]*ca{}, revoked: map[string]int{}, serial: 100}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.release = make(chan struct{})
	t.Cleanup(func() { close(p.release) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.down = "http://" + l.Addr().String()
	l.Close()
	p.root = p.issue(nil, &x509.Certificate{Subject: pkix.Name{CommonName: "Test Root"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign})
	p.inter = p.newInter(p.root)
	p.delegate = p.issue(p.inter, &x509.Certificate{Subject: pkix.Name{CommonName: "Test OCSP Signer"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}})
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.root.cert)
	return p
}

// newInter makes an intermediate under parent that names the responder and
// the parent's CRL.
func (p *testPKI) newInter(parent *ca) *ca {
	return p.issue(parent, &x509.Certificate{Subject: pkix.Name{CommonName: "Test Intermediate"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		OCSPServer:            []string{p.srv.URL + "/ocsp/good"},
		CRLDistributionPoints: []string{p.crlURL(parent, "")}})
}

func (p *testPKI) crlURL(issuer *ca, suffix string) string {
	return p.srv.URL + "/crl/" + issuer.cert.SerialNumber.Text(16) + suffix
}

// issue signs tmpl with parent (itself when parent is nil).
func (p *testPKI) issue(parent *ca, tmpl *x509.Certificate) *ca {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.serial++
	tmpl.SerialNumber = big.NewInt(p.serial)
	p.mu.Unlock()
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(24*time.Hour)
	signer, signerCert := crypto.Signer(key), tmpl
	if parent != nil {
		signer, signerCert = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, signerCert, &key.PublicKey, signer)
	if err != nil {
		p.t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	out := &ca{cert: c, key: key}
	p.mu.Lock()
	if parent == nil {
		parent = out
	}
	p.issuers[c.SerialNumber.Text(16)] = parent
	p.cas[c.SerialNumber.Text(16)] = out
	p.mu.Unlock()
	return out
}

// leaf issues a server certificate for localhost under issuer, naming the
// given responders and CRLs, and returns it with its chain up to (not
// including) the root.
func (p *testPKI) leaf(issuer *ca, ocspURLs, crlURLs []string) tls.Certificate {
	l := p.issue(issuer, &x509.Certificate{Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		OCSPServer:  ocspURLs, CRLDistributionPoints: crlURLs})
	return tls.Certificate{Certificate: [][]byte{l.cert.Raw, issuer.cert.Raw}, PrivateKey: l.key, Leaf: l.cert}
}

func (p *testPKI) revoke(c *x509.Certificate, reason int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.revoked[c.SerialNumber.Text(16)] = reason
}

func (p *testPKI) serve(w http.ResponseWriter, r *http.Request) {
	switch {
	case strings.HasPrefix(r.URL.Path, "/ocsp/"):
		p.ocspHits.Add(1)
		p.serveOCSP(w, r, strings.TrimPrefix(r.URL.Path, "/ocsp/"))
	case strings.HasPrefix(r.URL.Path, "/crl/"):
		p.serveCRL(w, strings.TrimPrefix(r.URL.Path, "/crl/"))
	default:
		http.NotFound(w, r)
	}
}

func (p *testPKI) serveOCSP(w http.ResponseWriter, r *http.Request, mode string) {
	if mode == "slow" {
		// Holds the request until the client gives up (the server notices
		// a closed connection only once the body has been read) or the
		// test ends.
		io.ReadAll(r.Body)
		select {
		case <-r.Context().Done():
		case <-p.release:
		}
		return
	}
	if mode == "trylater" {
		w.Write(ocsp.TryLaterErrorResponse)
		return
	}
	body, _ := io.ReadAll(r.Body)
	req, err := ocsp.ParseRequest(body)
	if err != nil {
		w.Write(ocsp.MalformedRequestErrorResponse)
		return
	}
	serial := req.SerialNumber.Text(16)
	p.mu.Lock()
	issuer, known := p.issuers[serial]
	reason, revoked := p.revoked[serial]
	p.mu.Unlock()
	now := time.Now()
	tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber,
		ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
	switch {
	case !known:
		tmpl.Status = ocsp.Unknown
		issuer = p.inter
	case revoked:
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, now.Add(-2*time.Hour).Truncate(time.Second), reason
	}
	if mode == "stale" {
		tmpl.ThisUpdate, tmpl.NextUpdate = now.Add(-3*time.Hour), now.Add(-time.Hour)
	}
	w.Write(p.ocspResponse(issuer, tmpl, mode == "wrongkey"))
}

// ocspResponse signs tmpl as the responder for issuer: through the
// delegate for the intermediate, with the CA's own key otherwise, or with
// a key nobody certified.
func (p *testPKI) ocspResponse(issuer *ca, tmpl ocsp.Response, wrongKey bool) []byte {
	signer, key := issuer.cert, issuer.key
	switch {
	case wrongKey:
		rogue := p.issue(nil, &x509.Certificate{Subject: pkix.Name{CommonName: "Rogue Responder"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageOCSPSigning}})
		signer, key = rogue.cert, rogue.key
		tmpl.Certificate = rogue.cert
	case issuer == p.inter:
		signer, key = p.delegate.cert, p.delegate.key
		tmpl.Certificate = p.delegate.cert
	}
	der, err := ocsp.CreateResponse(issuer.cert, signer, tmpl, key)
	if err != nil {
		p.t.Errorf("ocsp response: %v", err)
	}
	return der
}

// staple is the responder's answer for cert, as a server would staple it.
func (p *testPKI) staple(cert *x509.Certificate) []byte {
	p.mu.Lock()
	issuer := p.issuers[cert.SerialNumber.Text(16)]
	reason, revoked := p.revoked[cert.SerialNumber.Text(16)]
	p.mu.Unlock()
	now := time.Now()
	tmpl := ocsp.Response{Status: ocsp.Good, SerialNumber: cert.SerialNumber,
		ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}
	if revoked {
		tmpl.Status, tmpl.RevokedAt, tmpl.RevocationReason = ocsp.Revoked, now.Add(-time.Hour).Truncate(time.Second), reason
	}
	return p.ocspResponse(issuer, tmpl, false)
}

func (p *testPKI) serveCRL(w http.ResponseWriter, path string) {
	serial, stale := strings.CutSuffix(path, "/stale")
	p.mu.Lock()
	issuer := p.cas[serial]
	var entries []x509.RevocationListEntry
	for s, reason := range p.revoked {
		if p.issuers[s] == issuer && s != serial {
			n, _ := new(big.Int).SetString(s, 16)
			entries = append(entries, x509.RevocationListEntry{SerialNumber: n,
				RevocationTime: time.Now().Add(-2 * time.Hour).Truncate(time.Second), ReasonCode: reason})
		}
	}
	p.mu.Unlock()
	if issuer == nil {
		http.NotFound(w, nil)
		return
	}
	now := time.Now()
	tmpl := &x509.RevocationList{Number: big.NewInt(now.Unix()), ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(time.Hour), RevokedCertificateEntries: entries}
	if stale {
		tmpl.ThisUpdate, tmpl.NextUpdate = now.Add(-3*time.Hour), now.Add(-time.Hour)
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, issuer.cert, issuer.key)
	if err != nil {
		p.t.Errorf("crl: %v", err)
	}
	w.Write(der)
}

// tlsServer serves cert, with staple when set, on a loopback port until
// the test ends; every connection is a handshake and nothing more.
func tlsServer(t *testing.T, cert tls.Certificate, staple []byte) string {
	t.Helper()
	cert.OCSPStaple = staple
	return tlsServerConfig(t, &tls.Config{Certificates: []tls.Certificate{cert}})
}

func tlsServerConfig(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				tc := tls.Server(c, cfg)
				if tc.Handshake() == nil {
					io.Copy(io.Discard, tc)
				}
			}()
		}
	}()
	return l.Addr().String()
}

// handshake connects to addr with opts, bounded by ctx, and returns the
// facts of the connection.
func handshake(ctx context.Context, t *testing.T, addr string, opts tlsconf.Options) (tlsconf.Facts, error) {
	t.Helper()
	cfg, err := opts.ConfigContext(ctx, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return tlsconf.Facts{}, tlsconf.HandshakeError(err)
	}
	st := tc.ConnectionState()
	return tlsconf.FactsOf(&st), nil
}
