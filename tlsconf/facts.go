package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
)

// Facts is what a TLS connection negotiated: CSMail/SSL's output attributes
// (SSLConnectionProtocolOut, SSLConnectionCipherOut, SSLExchange) for modern
// TLS, plus the peer's chain.
type Facts struct {
	Version     string     `json:"version"`
	CipherSuite string     `json:"cipher_suite"`
	Group       string     `json:"group,omitempty"`
	ServerName  string     `json:"server_name,omitempty"`
	ALPN        string     `json:"alpn,omitempty"`
	Resumed     bool       `json:"resumed"`
	Chain       []CertFact `json:"chain"`
	// Revocation is what the revocation check found for each certificate
	// of the verified chain, leaf first (the chain the server sent may
	// lack the root); empty when nothing was checked.
	Revocation []CertStatus `json:"revocation,omitempty"`
}

// CertFact describes one certificate of the peer's chain.
type CertFact struct {
	Subject   string    `json:"subject"`
	Issuer    string    `json:"issuer"`
	DNSNames  []string  `json:"dns_names,omitempty"`
	IPs       []string  `json:"ips,omitempty"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Serial    string    `json:"serial"`
	// SPKIPin is the "sha256:BASE64" pin of the certificate's public key,
	// the form Options.Pins takes.
	SPKIPin string `json:"spki_pin"`
	// Fingerprint is the SHA-256 of the certificate in msmtp's
	// tls_fingerprint form, which Options.Pins also takes.
	Fingerprint string `json:"sha256_fingerprint"`
}

// FactsOf extracts the facts from a connection state.
func FactsOf(cs *tls.ConnectionState) Facts {
	f := Facts{
		Version:     tls.VersionName(cs.Version),
		CipherSuite: tls.CipherSuiteName(cs.CipherSuite),
		ServerName:  cs.ServerName,
		ALPN:        cs.NegotiatedProtocol,
		Resumed:     cs.DidResume,
	}
	if cs.CurveID != 0 {
		f.Group = cs.CurveID.String()
	}
	for _, c := range cs.PeerCertificates {
		f.Chain = append(f.Chain, certFact(c))
	}
	if len(cs.PeerCertificates) > 0 {
		f.Revocation = revocationOf(cs.PeerCertificates[0])
	}
	return f
}

// Summary returns the facts as the flat map a security driver reports.
func (f Facts) Summary() map[string]string {
	m := map[string]string{"version": f.Version, "cipher_suite": f.CipherSuite}
	if f.Group != "" {
		m["group"] = f.Group
	}
	if len(f.Chain) > 0 {
		m["peer"] = f.Chain[0].Subject
		m["peer_not_after"] = f.Chain[0].NotAfter.Format(time.RFC3339)
	}
	if len(f.Revocation) > 0 {
		m["revocation"] = string(f.Revocation[0].Status)
	}
	return m
}

func certFact(c *x509.Certificate) CertFact {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	fp := sha256.Sum256(c.Raw)
	cf := CertFact{
		Subject:     c.Subject.String(),
		Issuer:      c.Issuer.String(),
		DNSNames:    c.DNSNames,
		NotBefore:   c.NotBefore.UTC(),
		NotAfter:    c.NotAfter.UTC(),
		Serial:      c.SerialNumber.Text(16),
		SPKIPin:     "sha256:" + base64.StdEncoding.EncodeToString(sum[:]),
		Fingerprint: Fingerprint(fp[:]),
	}
	for _, ip := range c.IPAddresses {
		cf.IPs = append(cf.IPs, ip.String())
	}
	return cf
}

// HandshakeError classifies a handshake failure: the verification errors
// already carry their code; an alert or version mismatch is TLSProtocol; a
// deadline is Timeout; a dropped connection SocketRx.
func HandshakeError(err error) error {
	if err == nil {
		return nil
	}
	var me *mailsec.Error
	if errors.As(err, &me) {
		return err
	}
	var alert tls.AlertError
	var recHdr tls.RecordHeaderError
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return &mailsec.Error{Code: mailsec.Timeout, Op: "handshake", Err: err}
	case errors.As(err, &recHdr):
		return &mailsec.Error{Code: mailsec.TLSProtocol, Op: "handshake",
			Detail: "the server did not answer with TLS (is this a plain-text port?)", Err: err}
	case errors.As(err, &alert):
		detail := "the server refused the handshake"
		if strings.Contains(err.Error(), "protocol version") {
			detail = "no TLS version in common with the server"
		}
		return &mailsec.Error{Code: mailsec.TLSProtocol, Op: "handshake", Detail: detail, Err: err}
	case strings.Contains(err.Error(), "protocol version"), strings.Contains(err.Error(), "no cipher suite"):
		return &mailsec.Error{Code: mailsec.TLSProtocol, Op: "handshake", Detail: "no TLS version or cipher suite in common with the server", Err: err}
	}
	return mailsec.NetError("handshake", mailsec.TLS, err)
}
