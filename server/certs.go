package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/mailsec/mailsec"
)

// Generated files below <data>/tls.
const (
	caCertFile     = "ca.pem"
	caKeyFile      = "ca-key.pem"
	serverCertFile = "server.pem"
	serverKeyFile  = "server-key.pem"
)

// ensureLocalCA makes sure dir holds a local CA and a server certificate
// for localhost, 127.0.0.1 and ::1 signed by it (ECDSA P-256), creating
// them on the first run and reusing them afterwards. It returns the paths
// of the CA certificate, server certificate and server key.
func ensureLocalCA(dir string) (ca, cert, key string, err error) {
	ca, cert, key = filepath.Join(dir, caCertFile), filepath.Join(dir, serverCertFile), filepath.Join(dir, serverKeyFile)
	if exists(ca) && exists(cert) && exists(key) {
		return ca, cert, key, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", "", mailsec.Errorf(mailsec.Config, "tls", err, "cannot create %s", dir)
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "mailsec local CA", Organization: []string{"mailsec"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	caParsed, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", "", err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
		NotBefore:    now.Add(-time.Hour),
		// 825 days: the most Apple's clients accept for a TLS server cert.
		NotAfter:    now.AddDate(0, 0, 825),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caParsed, &srvKey.PublicKey, caKey)
	if err != nil {
		return "", "", "", err
	}
	for _, f := range []struct {
		path string
		typ  string
		der  func() ([]byte, error)
		mode os.FileMode
	}{
		{filepath.Join(dir, caKeyFile), "EC PRIVATE KEY", func() ([]byte, error) { return x509.MarshalECPrivateKey(caKey) }, 0o600},
		{ca, "CERTIFICATE", func() ([]byte, error) { return caDER, nil }, 0o644},
		{key, "EC PRIVATE KEY", func() ([]byte, error) { return x509.MarshalECPrivateKey(srvKey) }, 0o600},
		{cert, "CERTIFICATE", func() ([]byte, error) { return srvDER, nil }, 0o644},
	} {
		der, err := f.der()
		if err != nil {
			return "", "", "", err
		}
		if err := os.WriteFile(f.path, pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: der}), f.mode); err != nil {
			return "", "", "", mailsec.Errorf(mailsec.Config, "tls", err, "cannot write %s", f.path)
		}
	}
	return ca, cert, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
