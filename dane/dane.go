// Package dane authenticates SMTP servers with TLSA records: the
// certificate matching of RFC 7672 section 3 (SMTP opportunistic DANE
// TLS), with the TLSA semantics of RFC 6698 section 2.1 as updated by RFC
// 7671.
//
// It does no DNS: the relay looks the records up (resolve.LookupTLSA),
// decides from the DNSSEC status whether DANE applies (RFC 7672 section
// 2.2), and passes the records here. Keeping DNS out makes the matching
// testable on its own and keeps this package free of the resolver's
// dependencies.
//
// What the relay does with the outcome, RFC 7672 section 2.2:
//
//   - a secure TLSA RRset with at least one usable record (Usable): TLS is
//     mandatory and the server must authenticate (Verify); on failure the
//     server is skipped and the message deferred, never sent in clear;
//   - a secure TLSA RRset none of whose records is usable: the records
//     still say the server does TLS, so TLS stays mandatory ("mandatory
//     unauthenticated TLS"), but no authentication is possible; the relay
//     must not fall back to cleartext, nor to its non-DANE policy;
//   - no secure TLSA RRset: DANE does not apply and the relay's other
//     policy (MTA-STS, opportunistic TLS) decides.
package dane

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
)

// The TLSA parameters SMTP DANE uses (RFC 6698 section 7.2-7.4, with the
// acronyms of RFC 7218).
const (
	UsagePKIXTA uint8 = 0 // CA constraint; unusable for SMTP
	UsagePKIXEE uint8 = 1 // service certificate constraint; unusable for SMTP
	UsageDANETA uint8 = 2 // trust anchor assertion
	UsageDANEEE uint8 = 3 // domain-issued certificate

	SelectorCert uint8 = 0 // the full DER certificate
	SelectorSPKI uint8 = 1 // the DER SubjectPublicKeyInfo

	MatchFull   uint8 = 0 // the selected content itself
	MatchSHA256 uint8 = 1 // its SHA-256 digest
	MatchSHA512 uint8 = 2 // its SHA-512 digest
)

// Record is one TLSA record. It mirrors resolve.TLSARecord field for field
// so that the relay converts with a plain conversion, Record(r), while
// this package imports nothing of the resolver.
type Record struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// String renders the record as in a zone file, "3 1 1 ab12cd34…", with
// the data cut to 8 bytes: enough to tell records apart in a log line.
func (r Record) String() string {
	return fmt.Sprintf("%d %d %d %s", r.Usage, r.Selector, r.MatchingType, short(r.Data))
}

func short(b []byte) string {
	if len(b) > 8 {
		return hex.EncodeToString(b[:8]) + "…"
	}
	return hex.EncodeToString(b)
}

// Usable returns the records that SMTP DANE can use, in their order.
//
// RFC 7672 section 3.1.3: PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP,
// since MTAs share no set of public CAs; only DANE-TA(2) and DANE-EE(3)
// count. Section 3 (and RFC 6698 section 4.1) makes records with unknown
// selectors or matching types unusable too. A digest whose length is not
// that of its algorithm (RFC 6698 section 2.1.3), or an empty full value,
// can match no certificate; it is treated as malformed and so unusable as
// well, as Postfix does, so that a broken record alone does not make the
// server unreachable.
//
// When nothing is usable, see the package documentation: TLS remains
// mandatory, without authentication.
func Usable(recs []Record) []Record {
	var out []Record
	for _, r := range recs {
		if r.Usage != UsageDANETA && r.Usage != UsageDANEEE {
			continue
		}
		if r.Selector != SelectorCert && r.Selector != SelectorSPKI {
			continue
		}
		switch {
		case r.MatchingType == MatchFull && len(r.Data) > 0,
			r.MatchingType == MatchSHA256 && len(r.Data) == sha256.Size,
			r.MatchingType == MatchSHA512 && len(r.Data) == sha512.Size:
			out = append(out, r)
		}
	}
	return out
}

// Result says how the server authenticated.
type Result struct {
	// Matched is set when the chain satisfied a record.
	Matched bool
	// Record is the record that matched, nil if none did.
	Record *Record
	// Depth is the position in the chain of the certificate the record
	// matched: 0 for the leaf (DANE-EE), 1 or more for a trust anchor
	// certificate (DANE-TA). For a DANE-TA bare public key, which is not
	// in the chain, it is the depth just above the certificate it signed.
	Depth int
	// Reason says in a sentence why the chain matched or, with an error,
	// why it did not.
	Reason string
}

// Verify authenticates a server's certificate chain, as the server sent it
// (leaf first), against TLSA records; now is the time validity is checked
// at. Records that are not usable (see Usable) are ignored.
//
// names are the reference identifiers of RFC 7672 section 3.2.2: the TLSA
// base domain first, then the MX host name and, for an MX host that is a
// CNAME, its original name, in any order. The first name is the one error
// messages show the records at.
//
// A DANE-EE(3) record matches the leaf alone, by full certificate or by
// public key; RFC 7672 section 3.1.1 says the name, the validity dates and
// the issuer then do not matter, since the record binds the key to the
// server directly.
//
// A DANE-TA(2) record designates a trust anchor. It matches a certificate
// the server sent above the leaf (RFC 7671 section 5.2.2 makes servers
// send it), or, with selector SPKI and matching type full, it is the
// anchor's public key itself and need not be in the chain. The chain from
// the leaf up to the anchor must then validate (signatures, validity
// dates, CA constraints: RFC 7672 section 3.1.2) and the leaf must carry
// one of names (section 3.2.2), a wildcard covering one leftmost label
// allowed (section 3.2.3, RFC 6125 section 6.4.3).
//
// When nothing matches, Verify returns a Result with Matched false and a
// *mailsec.Error with code mailsec.TLSCertificate, or mailsec.TLSCertName
// when the only obstacle was a name that the leaf does not carry (so that
// a TLS report can say certificate-host-mismatch, RFC 8460 section 4.3.1).
// The detail lists every record tried and why it failed.
func Verify(chain []*x509.Certificate, recs []Record, names []string, now time.Time) (*Result, error) {
	at := ""
	if len(names) > 0 {
		at = " for " + names[0]
	}
	usable := Usable(recs)
	if len(usable) == 0 {
		return &Result{Reason: "no usable TLSA record"}, mailsec.Errorf(mailsec.TLSCertificate, "DANE", nil,
			"none of the %d TLSA records%s is usable for SMTP", len(recs), at)
	}
	if len(chain) == 0 {
		return &Result{Reason: "no certificate"}, mailsec.Errorf(mailsec.TLSCertificate, "DANE", nil, "the server sent no certificate")
	}
	leaf := chain[0]
	var reasons []string
	nameOnly := true // every failure so far was a name mismatch
	// DANE-EE records first: matching them needs no chain building.
	for i := range usable {
		r := &usable[i]
		if r.Usage != UsageDANEEE {
			continue
		}
		if matches(r, leaf) {
			return &Result{Matched: true, Record: r, Reason: fmt.Sprintf("the leaf certificate matches %s", r)}, nil
		}
		reasons = append(reasons, fmt.Sprintf("%s (leaf %s is %s)", r, describe(r), short(selectDigest(r, leaf))))
		nameOnly = false
	}
	for i := range usable {
		r := &usable[i]
		if r.Usage != UsageDANETA {
			continue
		}
		res, why, nameErr := verifyTA(r, chain, names, now)
		if res != nil {
			return res, nil
		}
		reasons = append(reasons, fmt.Sprintf("%s (%s)", r, why))
		nameOnly = nameOnly && nameErr
	}
	code := mailsec.TLSCertificate
	if nameOnly {
		code = mailsec.TLSCertName
	}
	detail := fmt.Sprintf("certificate does not match any of %d TLSA records%s: %s", len(usable), at, strings.Join(reasons, "; "))
	return &Result{Reason: detail}, mailsec.Errorf(code, "DANE", nil, "%s", detail)
}

// verifyTA tries one DANE-TA record. On success it returns the Result;
// otherwise why it failed, and whether the failure was only the name.
func verifyTA(r *Record, chain []*x509.Certificate, names []string, now time.Time) (*Result, string, bool) {
	anchor := -1 // index of the highest certificate the anchor vouches for
	depth := 0
	// A trust anchor is a CA, so it is never the leaf (RFC 7671 section
	// 5.2.2); the search starts above it.
	for i := 1; i < len(chain); i++ {
		if matches(r, chain[i]) {
			anchor, depth = i, i
			break
		}
	}
	if anchor < 0 && r.Selector == SelectorSPKI && r.MatchingType == MatchFull {
		// RFC 6698 section 2.1.1 and RFC 7671 section 5.2.2: "2 1 0" is
		// the anchor's public key itself, enough to check the signature
		// of the certificate it issued even if the server left the
		// anchor's certificate out.
		anchor = signedBy(chain, r.Data)
		depth = anchor + 1
	}
	if anchor < 0 {
		return nil, "no certificate of the chain matches, and no certificate is signed by it", false
	}
	if err := validate(chain, anchor, now); err != nil {
		return nil, fmt.Sprintf("matched at depth %d, but the chain does not validate: %v", depth, err), false
	}
	name, ok := certName(chain[0], names)
	if !ok {
		return nil, fmt.Sprintf("matched at depth %d, but the leaf names %s, none of %s", depth, leafNames(chain[0]), strings.Join(names, ", ")), true
	}
	return &Result{Matched: true, Record: r, Depth: depth,
		Reason: fmt.Sprintf("the trust anchor at depth %d matches %s and the leaf is valid for %s", depth, r, name)}, "", false
}

// signedBy returns the index of the highest certificate of chain whose
// signature verifies under the DER SubjectPublicKeyInfo spki, or -1.
func signedBy(chain []*x509.Certificate, spki []byte) int {
	pub, err := x509.ParsePKIXPublicKey(spki)
	if err != nil {
		return -1
	}
	// CheckSignatureFrom wants a parent certificate; one that holds only
	// the key, marked as a CA, lets x509 do the signature check with its
	// own algorithm rules instead of a copy of them here.
	parent := &x509.Certificate{PublicKey: pub, BasicConstraintsValid: true, IsCA: true}
	switch pub.(type) {
	case *rsa.PublicKey:
		parent.PublicKeyAlgorithm = x509.RSA
	case *ecdsa.PublicKey:
		parent.PublicKeyAlgorithm = x509.ECDSA
	case ed25519.PublicKey:
		parent.PublicKeyAlgorithm = x509.Ed25519
	default:
		// x509 parses no other key type that can sign certificates.
		return -1
	}
	for i := len(chain) - 1; i >= 0; i-- {
		if chain[i].CheckSignatureFrom(parent) == nil {
			return i
		}
	}
	return -1
}

// validate checks the path from the leaf up to chain[anchor] with
// chain[anchor] as the trust anchor, using only certificates the server
// sent. The leaf's name is checked apart, against several names.
func validate(chain []*x509.Certificate, anchor int, now time.Time) error {
	roots := x509.NewCertPool()
	roots.AddCert(chain[anchor])
	inter := x509.NewCertPool()
	for i := 1; i < anchor; i++ {
		inter.AddCert(chain[i])
	}
	_, err := chain[0].Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		// RFC 7672 sets no extended key usage for SMTP servers, and
		// private DANE-TA CAs often issue certificates without any.
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	})
	return err
}

// matches reports whether the content r selects from c matches r's data.
func matches(r *Record, c *x509.Certificate) bool {
	if r.MatchingType == MatchFull {
		return bytes.Equal(selected(r, c), r.Data)
	}
	return bytes.Equal(selectDigest(r, c), r.Data)
}

// selected returns the part of c that r's selector designates (RFC 6698
// section 2.1.2).
func selected(r *Record, c *x509.Certificate) []byte {
	if r.Selector == SelectorSPKI {
		return c.RawSubjectPublicKeyInfo
	}
	return c.Raw
}

// selectDigest returns what r's data is compared with for c: the selected
// content hashed as r's matching type says (RFC 6698 section 2.1.3).
func selectDigest(r *Record, c *x509.Certificate) []byte {
	b := selected(r, c)
	switch r.MatchingType {
	case MatchSHA256:
		d := sha256.Sum256(b)
		return d[:]
	case MatchSHA512:
		d := sha512.Sum512(b)
		return d[:]
	}
	return b
}

// describe names what r matches, "SPKI sha256", for error details.
func describe(r *Record) string {
	what := "certificate"
	if r.Selector == SelectorSPKI {
		what = "SPKI"
	}
	switch r.MatchingType {
	case MatchSHA256:
		what += " sha256"
	case MatchSHA512:
		what += " sha512"
	}
	return what
}

// certName returns the first of names that c is valid for.
func certName(c *x509.Certificate, names []string) (string, bool) {
	ids := c.DNSNames
	if len(ids) == 0 && c.Subject.CommonName != "" {
		// RFC 6125 section 6.4.4: without a DNS-ID the CN-ID may serve,
		// and private DANE-TA CAs do issue such certificates; RFC 7672
		// section 3.2.3 leaves the choice to the client.
		ids = []string{c.Subject.CommonName}
	}
	for _, n := range names {
		for _, id := range ids {
			if nameMatch(id, n) {
				return n, true
			}
		}
	}
	return "", false
}

// nameMatch matches a certificate identifier against a reference name,
// without regard to ASCII case (RFC 4343). A wildcard is allowed only as
// the whole leftmost label and covers exactly one label (RFC 7672 section
// 3.2.3, RFC 6125 section 6.4.3): "*.example.test" covers
// "mx.example.test" but neither "example.test" nor "a.mx.example.test".
func nameMatch(id, name string) bool {
	id = strings.ToLower(strings.TrimSuffix(id, "."))
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	// Only the presented identifier may hold a wildcard; a reference name
	// comes from DNS and is a host name.
	if id == "" || name == "" || strings.Contains(name, "*") {
		return false
	}
	if rest, ok := strings.CutPrefix(id, "*."); ok {
		label, parent, found := strings.Cut(name, ".")
		return found && label != "" && rest != "" && parent == rest
	}
	return id == name
}

func leafNames(c *x509.Certificate) string {
	ids := slices.Clone(c.DNSNames)
	if len(ids) == 0 {
		ids = append(ids, "CN="+c.Subject.CommonName)
	}
	return "[" + strings.Join(ids, " ") + "]"
}

// VerifyConnection returns a function for tls.Config.VerifyConnection that
// authenticates the server with Verify at the time of the handshake. The
// client must set InsecureSkipVerify, since WebPKI validation does not
// apply under DANE (RFC 7672 section 3.1.3); the handshake then fails with
// the error of Verify, which errors.As finds through the TLS error.
func VerifyConnection(recs []Record, names []string) func(tls.ConnectionState) error {
	recs, names = slices.Clone(recs), slices.Clone(names)
	return func(cs tls.ConnectionState) error {
		_, err := Verify(cs.PeerCertificates, recs, names, time.Now())
		return err
	}
}
