package relay

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/security"
	"github.com/mailsec/mailsec/tlsconf"
)

// Policy is the TLS policy of a destination, in Postfix's words
// (smtp_tls_security_level), so that operators moving from Postfix keep
// their vocabulary.
type Policy int

const (
	// Dane is the default: DANE (RFC 7672) for MX hosts that publish
	// DNSSEC-signed TLSA records, else the domain's MTA-STS policy (RFC
	// 8461) when it publishes one in enforce mode, else May. DANE wins
	// where both exist (RFC 8461 section 2). It needs a validating
	// resolver the relay can trust (Options.DNSSEC); without one it is
	// MTA-STS, then May.
	Dane Policy = iota
	// DaneOnly requires DANE: a host without usable TLSA records is not
	// used, and the mail waits.
	DaneOnly
	// MTASTS applies the domain's MTA-STS policy alone, ignoring DANE;
	// May where there is none.
	MTASTS
	// May is Domino's negotiated TLS (docs/requirements.md): STARTTLS when the server offers
	// it, with the certificate recorded but not required to verify (RFC
	// 7435 opportunistic security); plain text otherwise. After a failed
	// handshake the same host is tried once more in plain text, the only
	// level that ever falls back.
	May
	// None never starts TLS.
	None
	// Encrypt requires TLS; the certificate is not checked, so a passive
	// eavesdropper is defeated but an active attacker is not.
	Encrypt
	// Verify requires TLS with a certificate chain that verifies and names
	// the server: the MX host name for MX delivery (as Postfix's verify
	// level with its default match of the next-hop or MX name), the host
	// of the next hop for a route or smarthost.
	Verify
)

// String returns the policy's configuration name.
func (p Policy) String() string {
	switch p {
	case None:
		return "none"
	case Encrypt:
		return "encrypt"
	case Verify:
		return "verify"
	case May:
		return "may"
	case DaneOnly:
		return "dane-only"
	case MTASTS:
		return "mta-sts"
	}
	return "dane"
}

// ParsePolicy reads a configuration name.
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "dane", "":
		return Dane, nil
	case "dane-only":
		return DaneOnly, nil
	case "mta-sts":
		return MTASTS, nil
	case "may":
		return May, nil
	case "none":
		return None, nil
	case "encrypt":
		return Encrypt, nil
	case "verify", "secure":
		return Verify, nil
	}
	return 0, mailsec.Errorf(mailsec.Config, "relay", nil, "unknown TLS policy %q (none, may, encrypt, verify, dane, dane-only, mta-sts)", s)
}

// mode is the client TLS mode the policy asks for; implicit TLS for a
// next hop on the SMTPS port, where there is no STARTTLS to negotiate.
func (p Policy) mode(port int) security.TLSMode {
	switch {
	case p == None:
		return security.TLSNone
	case port == 465:
		return security.TLSImplicit
	case p == May:
		return security.TLSStartTLSOptional
	}
	return security.TLSStartTLS
}

// tlsOptions are the client TLS options for a server named name. Below
// Verify nothing is checked during the handshake (a check that cannot
// fail the delivery would only hide what the server presented); verdict
// judges the certificate afterwards for the record.
func (p Policy) tlsOptions(name string, roots *x509.CertPool) tlsconf.Options {
	o := tlsconf.Options{ServerName: name, RootCAs: roots}
	if p != Verify {
		o.NoServerCertificateValidation = true
		o.NoServerNameCheck = true
		o.Revocation.Mode = tlsconf.RevocationOff
	}
	return o
}

// verdict says what the certificate of an established session would have
// met under Verify: "verified", "untrusted" (the chain does not verify)
// or "name-mismatch"; "" without TLS.
func verdict(st *tls.ConnectionState, name string, roots *x509.CertPool) string {
	if st == nil {
		return ""
	}
	switch mailsec.CodeOf(tlsconf.Check(st.PeerCertificates, roots, name)) {
	case 0:
		return "verified"
	case mailsec.TLSCertName:
		return "name-mismatch"
	}
	return "untrusted"
}
