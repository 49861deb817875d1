package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
)

// benchPair is an issuer and a leaf it signed, with the issuer's key.
func benchPair(b *testing.B) (leaf, issuer *x509.Certificate, key *ecdsa.PrivateKey) {
	key, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	caT := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, caT, caT, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	issuer, _ = x509.ParseCertificate(der)
	leafT := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour)}
	der, err = x509.CreateCertificate(rand.Reader, leafT, issuer, &key.PublicKey, key)
	if err != nil {
		b.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	return leaf, issuer, key
}

// The cost a staple adds to a handshake: parsing and verifying it.
func BenchmarkStapledOCSPVerify(b *testing.B) {
	leaf, issuer, key := benchPair(b)
	now := time.Now()
	der, err := ocsp.CreateResponse(issuer, issuer, ocsp.Response{Status: ocsp.Good, SerialNumber: leaf.SerialNumber,
		ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, key)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if a := ocspAnswer(der, leaf, issuer, now); a.status != StatusGood {
			b.Fatal(a.note)
		}
	}
}

// The cost of a certificate whose status is cached.
func BenchmarkRevocationCacheHit(b *testing.B) {
	leaf, issuer, _ := benchPair(b)
	c := NewRevocationCache(16)
	key := cacheKey(leaf, issuer)
	c.put(key, CertStatus{Status: StatusGood, NextUpdate: time.Now().Add(time.Hour)})
	now := time.Now()
	for b.Loop() {
		if _, ok := c.get(cacheKey(leaf, issuer), now); !ok {
			b.Fatal("miss")
		}
	}
}
