package tlsconf

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/mailsec/mailsec"
)

// PinSelector says which part of a certificate a Pin hashes. The values are
// those of a DANE TLSA record's selector field (RFC 6698 section 2.1.2), so
// that DANE matching can reuse Pin.
type PinSelector uint8

const (
	// PinCert hashes the whole DER certificate: msmtp's tls_fingerprint.
	PinCert PinSelector = 0
	// PinSPKI hashes the SubjectPublicKeyInfo: it survives a renewal that
	// keeps the key (curl's --pinnedpubkey, HPKP).
	PinSPKI PinSelector = 1
)

// Pin is a SHA-256 hash (TLSA matching type 1, RFC 6698 section 2.1.3) of a
// certificate or of its public key.
type Pin struct {
	Selector PinSelector
	Sum      [sha256.Size]byte
}

// ParsePin reads the two spellings users already know: "sha256:BASE64" is
// the hash of the public key (SPKI), and msmtp's tls_fingerprint form, 32
// hex bytes with or without colons ("AB:CD:…"), optionally after
// "sha256:", is the hash of the whole certificate.
func ParsePin(s string) (Pin, error) {
	body, _ := strings.CutPrefix(s, "sha256:")
	if hexed := strings.ReplaceAll(body, ":", ""); len(hexed) == 2*sha256.Size {
		var p Pin
		if _, err := hex.Decode(p.Sum[:], []byte(hexed)); err == nil {
			p.Selector = PinCert
			return p, nil
		}
	}
	raw, err := base64.StdEncoding.DecodeString(body)
	if body == s || err != nil || len(raw) != sha256.Size {
		return Pin{}, mailsec.Errorf(mailsec.Config, "tls options", err,
			"pin %q is neither sha256:BASE64 (public key) nor a SHA-256 certificate fingerprint (AB:CD:…, 32 bytes)", s)
	}
	p := Pin{Selector: PinSPKI}
	copy(p.Sum[:], raw)
	return p, nil
}

// Matches reports whether c is the certificate or carries the key the pin
// names.
func (p Pin) Matches(c *x509.Certificate) bool {
	data := c.Raw
	if p.Selector == PinSPKI {
		data = c.RawSubjectPublicKeyInfo
	}
	return sha256.Sum256(data) == p.Sum
}

// String spells the pin the way ParsePin reads it.
func (p Pin) String() string {
	if p.Selector == PinSPKI {
		return "sha256:" + base64.StdEncoding.EncodeToString(p.Sum[:])
	}
	return Fingerprint(p.Sum[:])
}

// Fingerprint writes a hash as msmtp prints tls_fingerprint: upper-case hex
// bytes joined by colons.
func Fingerprint(sum []byte) string {
	var b strings.Builder
	for i, c := range sum {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}

func parsePins(pins []string) ([]Pin, error) {
	var out []Pin
	for _, s := range pins {
		p, err := ParsePin(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// checkPins requires the leaf to match one of the pins when there are any.
func checkPins(leaf *x509.Certificate, pins []Pin) error {
	if len(pins) == 0 {
		return nil
	}
	// Both hashes are taken once, not once per pin as Matches would, and
	// serve the error message too.
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	cert := sha256.Sum256(leaf.Raw)
	for _, p := range pins {
		if (p.Selector == PinSPKI && p.Sum == spki) || (p.Selector != PinSPKI && p.Sum == cert) {
			return nil
		}
	}
	return &mailsec.Error{Code: mailsec.TLSCertificate, Op: "handshake",
		Detail: "the server certificate matches no pin: its key pin is sha256:" + base64.StdEncoding.EncodeToString(spki[:]) +
			" and its certificate fingerprint " + Fingerprint(cert[:])}
}
