package dane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
)

// now is the real time so that the handshake test, where crypto/tls's
// VerifyConnection runs Verify at time.Now, can use the same certificates.
var now = time.Now()

// pki is a test certificate with its key and DER, kept apart from the
// parsed form so that the tests compute digests from what was signed, not
// from the fields the code under test reads.
type pki struct {
	key  *ecdsa.PrivateKey
	der  []byte
	cert *x509.Certificate
}

// spki marshals the public key anew rather than reading
// RawSubjectPublicKeyInfo, for an independent view of selector 1.
func (p *pki) spki(t *testing.T) []byte {
	t.Helper()
	b, err := x509.MarshalPKIXPublicKey(p.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var serial int64

func issue(t *testing.T, tmpl *x509.Certificate, parent *pki) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial++
	tmpl.SerialNumber = big.NewInt(serial)
	if tmpl.NotBefore.IsZero() {
		tmpl.NotBefore, tmpl.NotAfter = now.Add(-time.Hour), now.Add(24*time.Hour)
	}
	signer, issuer := crypto.Signer(key), tmpl
	if parent != nil {
		signer, issuer = parent.key, parent.cert
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, key.Public(), signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &pki{key: key, der: der, cert: cert}
}

func newCA(t *testing.T, name string) *pki {
	return issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}, nil)
}

func newLeaf(t *testing.T, ca *pki, dnsNames ...string) *pki {
	return issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: dnsNames[0]}, DNSNames: dnsNames,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}, ca)
}

func s256(b []byte) []byte { d := sha256.Sum256(b); return d[:] }
func s512(b []byte) []byte { d := sha512.Sum512(b); return d[:] }

func chain(ps ...*pki) []*x509.Certificate {
	var out []*x509.Certificate
	for _, p := range ps {
		out = append(out, p.cert)
	}
	return out
}

var names = []string{"mx.example.test"}

func TestDANEEE(t *testing.T) {
	ca := newCA(t, "Test CA")
	leaf := newLeaf(t, ca, "mx.example.test")
	for _, r := range []Record{
		{3, 1, 1, s256(leaf.spki(t))},
		{3, 0, 1, s256(leaf.der)},
		{3, 1, 2, s512(leaf.spki(t))},
		{3, 0, 2, s512(leaf.der)},
		{3, 0, 0, leaf.der},
		{3, 1, 0, leaf.spki(t)},
	} {
		res, err := Verify(chain(leaf, ca), []Record{r}, names, now)
		if err != nil || !res.Matched || res.Depth != 0 || res.Record == nil || res.Record.String() != r.String() {
			t.Errorf("%s: %+v, %v", r, res, err)
		}
	}

	// A mismatch names the record and what the leaf has instead.
	other := newLeaf(t, ca, "mx.example.test")
	bad := Record{3, 1, 1, s256(other.spki(t))}
	res, err := Verify(chain(leaf, ca), []Record{bad, {3, 0, 1, s256(other.der)}}, []string{"mx.example.test", "example.test"}, now)
	if res == nil || res.Matched || !errors.Is(err, mailsec.TLSCertificate) {
		t.Fatalf("mismatch: %+v, %v", res, err)
	}
	var me *mailsec.Error
	if !errors.As(err, &me) {
		t.Fatalf("%T", err)
	}
	want := "certificate does not match any of 2 TLSA records for mx.example.test: 3 1 1 " + hex.EncodeToString(s256(other.spki(t))[:8]) +
		"… (leaf SPKI sha256 is " + hex.EncodeToString(s256(leaf.spki(t))[:8]) + "…); 3 0 1 "
	if !strings.HasPrefix(me.Detail, want) || !strings.Contains(me.Detail, "(leaf certificate sha256 is "+hex.EncodeToString(s256(leaf.der)[:8])) {
		t.Errorf("detail %q\nwant prefix %q", me.Detail, want)
	}

	// RFC 7672 section 3.1.1: no name or date check under DANE-EE, and the
	// issuer does not matter either.
	expired := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "elsewhere.test"}, DNSNames: []string{"elsewhere.test"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}, nil)
	if res, err := Verify(chain(expired), []Record{{3, 1, 1, s256(expired.spki(t))}}, names, now); err != nil || !res.Matched {
		t.Errorf("expired self-signed leaf with another name: %+v, %v", res, err)
	}
}

func TestDANETA(t *testing.T) {
	ca := newCA(t, "Test CA")
	leaf := newLeaf(t, ca, "mx.example.test")
	rec := Record{2, 1, 1, s256(ca.spki(t))}

	for _, r := range []Record{rec, {2, 0, 1, s256(ca.der)}, {2, 0, 0, ca.der}, {2, 1, 2, s512(ca.spki(t))}} {
		res, err := Verify(chain(leaf, ca), []Record{r}, names, now)
		if err != nil || !res.Matched || res.Depth != 1 {
			t.Errorf("%s: %+v, %v", r, res, err)
		}
	}
	// Any of the reference names will do (RFC 7672 section 3.2.2).
	if res, err := Verify(chain(leaf, ca), []Record{rec}, []string{"_25._tcp.base.test", "mx.example.test"}, now); err != nil || !res.Matched {
		t.Errorf("second name: %+v, %v", res, err)
	}

	// A name the leaf does not carry.
	res, err := Verify(chain(leaf, ca), []Record{rec}, []string{"other.example.test"}, now)
	if res.Matched || !errors.Is(err, mailsec.TLSCertName) || !strings.Contains(err.Error(), "the leaf names [mx.example.test]") {
		t.Errorf("wrong name: %+v, %v", res, err)
	}

	// A leaf from another CA, with its own CA in the chain.
	otherCA := newCA(t, "Other CA")
	stranger := newLeaf(t, otherCA, "mx.example.test")
	res, err = Verify(chain(stranger, otherCA), []Record{rec}, names, now)
	if res.Matched || !errors.Is(err, mailsec.TLSCertificate) || !strings.Contains(err.Error(), "no certificate of the chain matches") {
		t.Errorf("other CA: %+v, %v", res, err)
	}
	// The same leaf sent along with the trusted CA it does not come from.
	res, err = Verify(chain(stranger, ca), []Record{rec}, names, now)
	if res.Matched || !errors.Is(err, mailsec.TLSCertificate) || !strings.Contains(err.Error(), "the chain does not validate") {
		t.Errorf("CA sent but not the issuer: %+v, %v", res, err)
	}

	// Under DANE-TA the dates count (RFC 7672 section 3.1.2).
	expired := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "mx.example.test"}, DNSNames: []string{"mx.example.test"},
		NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)}, ca)
	if res, err := Verify(chain(expired, ca), []Record{rec}, names, now); res.Matched || !errors.Is(err, mailsec.TLSCertificate) {
		t.Errorf("expired leaf: %+v, %v", res, err)
	}

	// A trust anchor is never the leaf, even if the leaf's key matches.
	if res, err := Verify(chain(leaf, ca), []Record{{2, 1, 1, s256(leaf.spki(t))}}, names, now); res.Matched || err == nil {
		t.Errorf("TA record for the leaf: %+v, %v", res, err)
	}
}

func TestDANETABareKey(t *testing.T) {
	root := newCA(t, "Root")
	inter := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "Intermediate"}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}, root)
	leaf := newLeaf(t, inter, "mx.example.test")
	rec := Record{2, 1, 0, root.spki(t)}

	// The root is not sent: its key alone anchors the chain.
	res, err := Verify(chain(leaf, inter), []Record{rec}, names, now)
	if err != nil || !res.Matched || res.Depth != 2 {
		t.Errorf("bare key above the intermediate: %+v, %v", res, err)
	}
	// Issued directly under the key, the leaf alone will do.
	direct := newLeaf(t, root, "mx.example.test")
	if res, err := Verify(chain(direct), []Record{rec}, names, now); err != nil || !res.Matched || res.Depth != 1 {
		t.Errorf("bare key above the leaf: %+v, %v", res, err)
	}
	// The key of some other CA anchors nothing.
	other := newCA(t, "Other")
	if res, err := Verify(chain(leaf, inter), []Record{{2, 1, 0, other.spki(t)}}, names, now); res.Matched || err == nil {
		t.Errorf("foreign key: %+v, %v", res, err)
	}
}

func TestUsable(t *testing.T) {
	d := make([]byte, 32)
	in := []Record{
		{0, 1, 1, d}, {1, 1, 1, d}, // PKIX usages: RFC 7672 section 3.1.3
		{4, 1, 1, d},               // unknown usage
		{3, 2, 1, d}, {2, 1, 3, d}, // unknown selector, matching type
		{3, 1, 1, d[:31]}, {3, 1, 2, d}, {3, 0, 0, nil}, // malformed
		{3, 1, 1, d}, {2, 0, 2, make([]byte, 64)}, {2, 1, 0, []byte{1}},
	}
	got := Usable(in)
	if len(got) != 3 || got[0].String() != in[8].String() || got[1].String() != in[9].String() || got[2].String() != in[10].String() {
		t.Errorf("%v", got)
	}

	// PKIX-EE and PKIX-TA records are ignored even when they match.
	ca := newCA(t, "Test CA")
	leaf := newLeaf(t, ca, "mx.example.test")
	res, err := Verify(chain(leaf, ca), []Record{{1, 1, 1, s256(leaf.spki(t))}, {0, 1, 1, s256(ca.spki(t))}}, names, now)
	if res.Matched || !errors.Is(err, mailsec.TLSCertificate) || !strings.Contains(err.Error(), "none of the 2 TLSA records for mx.example.test is usable") {
		t.Errorf("PKIX usages: %+v, %v", res, err)
	}
	if _, err := Verify(nil, []Record{{3, 1, 1, s256(leaf.spki(t))}}, names, now); !errors.Is(err, mailsec.TLSCertificate) {
		t.Errorf("no certificate: %v", err)
	}
}

func TestNameMatch(t *testing.T) {
	for _, c := range []struct {
		id, name string
		want     bool
	}{
		{"mx.example.test", "MX.Example.Test.", true},
		{"*.example.test", "mx.example.test", true},
		{"*.example.test", "example.test", false},
		{"*.example.test", "a.mx.example.test", false},
		{"m*.example.test", "mx.example.test", false},
		{"*.mx.example.test", "*.mx.example.test", false},
		{"mx.example.test", "mx.example.test.evil", false},
		{"*", "test", false},
		{"", "", false},
	} {
		if got := nameMatch(c.id, c.name); got != c.want {
			t.Errorf("nameMatch(%q, %q) = %v", c.id, c.name, got)
		}
	}
	// A CN-only certificate is matched on its CN (RFC 6125 section 6.4.4),
	// but a CN is ignored when DNS names are present.
	cnOnly := &x509.Certificate{Subject: pkix.Name{CommonName: "mx.example.test"}}
	withSAN := &x509.Certificate{Subject: pkix.Name{CommonName: "mx.example.test"}, DNSNames: []string{"other.test"}}
	if _, ok := certName(cnOnly, names); !ok {
		t.Error("CN-only certificate")
	}
	if _, ok := certName(withSAN, names); ok {
		t.Error("CN used despite DNS names")
	}
}

func TestHandshake(t *testing.T) {
	ca := newCA(t, "Test CA")
	leaf := newLeaf(t, ca, "mx.example.test")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{
		Certificate: [][]byte{leaf.der, ca.der}, PrivateKey: leaf.key}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// The handshake fails on purpose in some cases; only the
			// client's view is checked.
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	dial := func(recs []Record, names []string) error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{
			// DANE replaces WebPKI validation: VerifyConnection does it.
			InsecureSkipVerify: true,
			VerifyConnection:   VerifyConnection(recs, names),
		})
		if err == nil {
			conn.Close()
		}
		return err
	}
	if err := dial([]Record{{3, 1, 1, s256(leaf.spki(t))}}, names); err != nil {
		t.Errorf("DANE-EE: %v", err)
	}
	if err := dial([]Record{{3, 1, 1, s256(ca.spki(t))}}, names); !errors.Is(err, mailsec.TLSCertificate) {
		t.Errorf("DANE-EE mismatch: %v", err)
	}
	ta := []Record{{2, 1, 1, s256(ca.spki(t))}}
	if err := dial(ta, names); err != nil {
		t.Errorf("DANE-TA: %v", err)
	}
	if err := dial(ta, []string{"other.test"}); !errors.Is(err, mailsec.TLSCertName) {
		t.Errorf("DANE-TA, wrong name: %v", err)
	}
}
