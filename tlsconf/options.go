// Package tlsconf turns CSMail/SSL's SSLInfo (docs/requirements.md) into Go: Options in (what to
// verify, which CA, client certificate, versions and suites) and Facts out
// (what was negotiated and whom we talked to). Verification is on unless the
// caller turns it off by name.
package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/mailsec/mailsec"
)

// Options are the TLS parameters of a client connection. The zero value
// verifies the server chain against the system roots and the host name the
// caller dials, with TLS 1.2 as the minimum version.
type Options struct {
	// ServerName overrides the name checked against the certificate and
	// sent as SNI; empty means the host part of the address dialled.
	ServerName string
	// NoServerNameCheck skips matching the certificate to the host name
	// (CSMail/SSL's SSLNoServerNameCheck; Uniface's verify_server_name=0). The
	// chain is still verified.
	NoServerNameCheck bool
	// NoServerCertificateValidation skips chain verification entirely
	// (SSLNoServerCertificateValidation; verify_server=0). Pins still apply.
	NoServerCertificateValidation bool
	// CAFile is a PEM bundle of trusted roots (Uniface's ca_certificate);
	// empty means the system roots.
	CAFile string
	// RootCAs, when set, is used instead of CAFile and the system roots.
	RootCAs *x509.CertPool
	// Certificates are client certificates offered when the server asks.
	Certificates []tls.Certificate
	// MinVersion and MaxVersion bound the protocol version; zero means TLS
	// 1.2 and the newest Go supports. Versions below 1.2 are refused.
	MinVersion, MaxVersion uint16
	// CipherSuites restricts the TLS 1.2 suites (TLS 1.3 suites are not
	// configurable in Go, and all of them are strong); nil means Go's
	// defaults.
	CipherSuites []uint16
	// Pins are hashes of the leaf, as ParsePin reads them: "sha256:BASE64"
	// of its SubjectPublicKeyInfo or msmtp's tls_fingerprint of the whole
	// certificate; when set the leaf must match one of them.
	Pins []string
	// Revocation says which certificates of the verified chain are checked
	// for revocation and how strictly; the zero value is CSMail/SSL's
	// default. Nothing is checked when chain verification is off.
	Revocation Revocation
	// Observe, when set, sees the peer's certificates before they are
	// verified, so that a diagnostic tool can show a chain it rejects.
	Observe func(tls.ConnectionState)
	// VerifyPeer, when set, replaces the chain and name checks with its
	// own (DANE, RFC 7672, where the TLSA records, not a CA, say which
	// certificate is right); pins and revocation still apply on top.
	VerifyPeer func(tls.ConnectionState) error
}

// Config is ConfigContext without a context: the revocation check of each
// handshake is bounded by DefaultRevocationTimeout.
func (o *Options) Config(host string) (*tls.Config, error) {
	return o.ConfigContext(context.Background(), host)
}

// ConfigContext builds the tls.Config for a connection to host. Name checks
// and chain checks are done in VerifyConnection so that each can be turned
// off alone and each failure gets its own error code. The revocation
// fetches of its handshakes end with ctx, which should be the context that
// bounds the connect.
func (o *Options) ConfigContext(ctx context.Context, host string) (*tls.Config, error) {
	if o == nil {
		o = &Options{}
	}
	min := o.MinVersion
	if min == 0 {
		min = tls.VersionTLS12
	}
	if min < tls.VersionTLS12 {
		return nil, mailsec.Errorf(mailsec.Config, "tls options", nil, "minimum TLS version %s is below TLS 1.2", tls.VersionName(min))
	}
	if o.MaxVersion != 0 && o.MaxVersion < min {
		return nil, mailsec.Errorf(mailsec.Config, "tls options", nil, "maximum TLS version %s is below the minimum %s", tls.VersionName(o.MaxVersion), tls.VersionName(min))
	}
	roots := o.RootCAs
	if roots == nil && o.CAFile != "" {
		pool, err := LoadCAFile(o.CAFile)
		if err != nil {
			return nil, err
		}
		roots = pool
	}
	pins, err := parsePins(o.Pins)
	if err != nil {
		return nil, err
	}
	name := o.ServerName
	if name == "" {
		name = host
	}
	v := &verifier{ctx: ctx, roots: roots, name: name, noName: o.NoServerNameCheck,
		noChain: o.NoServerCertificateValidation, pins: pins, rev: o.Revocation, observe: o.Observe, peer: o.VerifyPeer}
	return &tls.Config{
		ServerName:   name,
		MinVersion:   min,
		MaxVersion:   o.MaxVersion,
		CipherSuites: o.CipherSuites,
		Certificates: o.Certificates,
		// Go's built-in verification cannot check the chain while skipping
		// the name, so it is replaced by VerifyConnection, which does both
		// with the same roots and reports them apart.
		InsecureSkipVerify: true,
		VerifyConnection:   v.verify,
	}, nil
}

// LoadCAFile reads a PEM bundle into a pool.
func LoadCAFile(path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "tls options", err, "cannot read CA file %s", path)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, mailsec.Errorf(mailsec.Config, "tls options", nil, "no PEM certificate in CA file %s", path)
	}
	return pool, nil
}

// ParseVersion maps "1.2" and "1.3" to their constants.
func ParseVersion(s string) (uint16, error) {
	switch strings.TrimPrefix(strings.ToLower(s), "tls") {
	case "1.2":
		return tls.VersionTLS12, nil
	case "1.3":
		return tls.VersionTLS13, nil
	}
	return 0, mailsec.Errorf(mailsec.Config, "tls options", nil, "unsupported TLS version %q (use 1.2 or 1.3)", s)
}

type verifier struct {
	ctx     context.Context
	roots   *x509.CertPool
	name    string
	noName  bool
	noChain bool
	pins    []Pin
	rev     Revocation
	observe func(tls.ConnectionState)
	peer    func(tls.ConnectionState) error
}

func (v *verifier) verify(cs tls.ConnectionState) error {
	if v.observe != nil {
		v.observe(cs)
	}
	if len(cs.PeerCertificates) == 0 {
		return &mailsec.Error{Code: mailsec.TLSCertificate, Op: "handshake", Detail: "the server sent no certificate"}
	}
	leaf := cs.PeerCertificates[0]
	if v.peer != nil {
		if err := v.peer(cs); err != nil {
			return err
		}
		return checkPins(leaf, v.pins)
	}
	var chain []*x509.Certificate
	if !v.noChain {
		var err error
		if chain, err = verifyChain(cs.PeerCertificates, v.roots); err != nil {
			return err
		}
	}
	if !v.noName {
		if err := verifyName(leaf, v.name); err != nil {
			return err
		}
	}
	if err := checkPins(leaf, v.pins); err != nil {
		return err
	}
	// Revocation is checked last: it is the only check that goes to the
	// network, and a chain that fails the others is refused anyway.
	return checkRevocation(v.ctx, v.rev, chain, cs.OCSPResponse)
}

// Check verifies a peer's certificates as the zero Options would, chain
// against roots (nil: the system's) and the leaf against name, without
// pins or revocation: for a caller that let a handshake through
// unverified and wants to know afterwards what the certificate would
// have met. The error is coded as a handshake's would be.
func Check(peer []*x509.Certificate, roots *x509.CertPool, name string) error {
	if len(peer) == 0 {
		return &mailsec.Error{Code: mailsec.TLSCertificate, Op: "handshake", Detail: "the server sent no certificate"}
	}
	if _, err := verifyChain(peer, roots); err != nil {
		return err
	}
	return verifyName(peer[0], name)
}

// verifyChain verifies the leaf of peer (leaf first, as sent) for server
// authentication with the rest as intermediates, and returns the chain.
func verifyChain(peer []*x509.Certificate, roots *x509.CertPool) ([]*x509.Certificate, error) {
	inter := x509.NewCertPool()
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	chains, err := peer[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	if err != nil {
		return nil, chainError(peer[0], err)
	}
	return chains[0], nil
}

// verifyName checks that the leaf names name.
func verifyName(leaf *x509.Certificate, name string) error {
	if err := leaf.VerifyHostname(name); err != nil {
		return &mailsec.Error{Code: mailsec.TLSCertName, Op: "handshake",
			Detail: fmt.Sprintf("certificate for %s does not match %q", certNames(leaf), name), Err: err}
	}
	return nil
}

func chainError(leaf *x509.Certificate, err error) error {
	var ua x509.UnknownAuthorityError
	var inv x509.CertificateInvalidError
	detail := "the certificate chain does not verify"
	switch {
	case errors.As(err, &ua):
		detail = fmt.Sprintf("certificate for %s is signed by an unknown authority (issuer %q)", certNames(leaf), leaf.Issuer.String())
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		detail = fmt.Sprintf("certificate for %s is expired or not yet valid (valid %s to %s)", certNames(leaf),
			leaf.NotBefore.UTC().Format("2006-01-02"), leaf.NotAfter.UTC().Format("2006-01-02"))
	}
	return &mailsec.Error{Code: mailsec.TLSCertificate, Op: "handshake", Detail: detail, Err: err}
}

func certNames(c *x509.Certificate) string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return fmt.Sprintf("%q", c.Subject.CommonName)
	}
	return strings.Join(names, ", ")
}
