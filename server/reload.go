package server

import (
	"crypto/tls"
	"os"
	"sync"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/tlsconf"
)

// certReloader serves the certificate from its files and picks up a
// renewed one without a restart: GetCertificate re-reads the files when
// their modification time changed (checked at most once a second), and
// Reload re-reads them at once (SIGHUP). A broken new file keeps the old
// certificate in service.
type certReloader struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	mtime   time.Time
	checked time.Time
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the certificate and key files.
func (r *certReloader) Reload() error {
	c, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return mailsec.Errorf(mailsec.Config, "tls", err, "cannot load certificate %s", r.certFile)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.cert, r.mtime, r.checked = &c, r.modTime(), time.Now()
	return nil
}

// modTime is the later modification time of the two files.
func (r *certReloader) modTime() time.Time {
	var t time.Time
	for _, f := range []string{r.certFile, r.keyFile} {
		if fi, err := os.Stat(f); err == nil && fi.ModTime().After(t) {
			t = fi.ModTime()
		}
	}
	return t
}

// GetCertificate is the tls.Config hook.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	stale := time.Since(r.checked) > time.Second && !r.modTime().Equal(r.mtime)
	if time.Since(r.checked) > time.Second {
		r.checked = time.Now()
	}
	cert := r.cert
	r.mu.Unlock()
	if stale {
		if err := r.Reload(); err == nil {
			r.mu.Lock()
			cert = r.cert
			r.mu.Unlock()
		}
	}
	return cert, nil
}

// tlsConfig is the servers' TLS configuration: TLS 1.2 at least (RFC 8996,
// RFC 8314 section 4.1), Go's default cipher suites (AEAD only for 1.2
// when ECDSA), session tickets on for cheap resumption. A certificate that
// names an OCSP responder gets its response stapled (RFC 6066 section 8).
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: tlsconf.NewStapler(r.GetCertificate, nil).GetCertificate,
	}
}
