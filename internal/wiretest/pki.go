package wiretest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// Stapled returns a certificate for localhost and 127.0.0.1 issued by a
// fresh root, valid from an hour ago until validFor from now, with an OCSP
// response of the given status (ocsp.Good, ocsp.Revoked) stapled, signed
// by the root; and the root in PEM, for a client's CA file. The chain has
// two links, so that a revocation check that leaves the root out still
// checks one certificate.
func Stapled(t testing.TB, validFor time.Duration, status int) (tls.Certificate, []byte) {
	t.Helper()
	fail := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fail(err)
	now := time.Now()
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "wiretest root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validFor + time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	fail(err)
	root, err := x509.ParseCertificate(rootDER)
	fail(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	fail(err)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(validFor),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, &key.PublicKey, rootKey)
	fail(err)
	leaf, err := x509.ParseCertificate(der)
	fail(err)
	resp := ocsp.Response{Status: status, SerialNumber: leaf.SerialNumber, ThisUpdate: now.Add(-time.Minute),
		NextUpdate: now.Add(time.Hour)}
	if status == ocsp.Revoked {
		resp.RevokedAt, resp.RevocationReason = now.Add(-time.Minute), ocsp.KeyCompromise
	}
	staple, err := ocsp.CreateResponse(root, root, resp, rootKey)
	fail(err)
	return tls.Certificate{Certificate: [][]byte{der, rootDER}, PrivateKey: key, Leaf: leaf, OCSPStaple: staple},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER})
}
