package resolve

import (
	"context"
	"encoding/hex"
	"errors"
	"strconv"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec"
)

// TLSA is the result of LookupTLSA: the TLSA RRset of one SMTP server.
//
// RFC 7672 section 2.2 gives the relay three outcomes, and TLSA keeps them
// apart:
//
//   - Secure with Records: DANE applies; the server must authenticate
//     against the usable ones among them (package dane).
//   - Secure without Records: the zone proves there is no TLSA RRset
//     (authenticated NXDOMAIN or NODATA), so DANE does not apply.
//   - not Secure: the answer is not authenticated, and RFC 7672 section
//     2.2.3 treats it as if there were no TLSA records. Records then
//     still holds what the server sent, for logs and reports only; it
//     MUST NOT be used to authenticate anything, since anyone on the path
//     could have forged it.
//
// A failed lookup (SERVFAIL, which is also how a validating resolver
// reports a bogus answer, or a timeout) is not a TLSA but an error.
type TLSA struct {
	// Name is the owner name queried, "_25._tcp.mx.example.test",
	// without trailing dot, in lower case.
	Name string
	// Records are the TLSA records of the answer, after any CNAMEs.
	Records []TLSARecord
	// Secure is set when the answer had the AD bit: the validating
	// resolver authenticated the records, or their absence.
	Secure bool
}

// TLSARecord is one TLSA record (RFC 6698 section 2.1), with its
// certificate association data decoded from the presentation hex.
type TLSARecord struct {
	Usage, Selector, MatchingType uint8
	Data                          []byte
}

// LookupTLSA queries the TLSA records of the SMTP server host at port,
// the RRset owned by "_<port>._tcp.<host>" (RFC 6698 section 3, RFC 7672
// section 2.2.3), with the DO bit like every query of the Resolver.
// CNAMEs in the answer are followed as for the other lookups: RFC 7672
// section 2.2.3 allows the TLSA owner name to be an alias, and the AD bit
// then covers the whole chain.
//
// Only a definite answer is a result: NOERROR with records, NODATA or
// NXDOMAIN. Any other outcome is returned as a temporary error, which the
// relay must treat by deferring delivery to this server, never by
// skipping DANE: RFC 7672 section 2.2 forbids delivering over cleartext
// or unauthenticated TLS when the TLSA lookup fails, since an attacker
// able to make it fail could otherwise strip the authentication.
//
// The caller decides which host to look up: RFC 7672 section 2.2.3 asks
// for the TLSA records only when the server's address records were
// secure (Host.Secure), and, for an MX host name that is a CNAME, at the
// expanded name first.
func (r *Resolver) LookupTLSA(ctx context.Context, host string, port int) (*TLSA, error) {
	if port < 1 || port > 65535 {
		return nil, mailsec.Errorf(mailsec.Data, "resolve", nil, "invalid port %d for a TLSA lookup", port)
	}
	fqdn, err := canonical("_" + strconv.Itoa(port) + "._tcp." + host)
	if err != nil {
		return nil, err
	}
	resp, err := r.query(ctx, fqdn, dns.TypeTLSA)
	if err != nil {
		if errors.Is(err, ErrNoSuchDomain) {
			// NXDOMAIN is a definite "no TLSA records", as secure as its
			// AD bit says (RFC 7672 section 2.2.3), and no failure.
			return &TLSA{Name: display(fqdn), Secure: resp.AuthenticatedData}, nil
		}
		return nil, err
	}
	tlsa := &TLSA{Name: display(fqdn), Secure: resp.AuthenticatedData}
	for _, rr := range Chase(resp, fqdn, dns.TypeTLSA) {
		t, ok := rr.(*dns.TLSA)
		if !ok {
			continue
		}
		data, err := hex.DecodeString(t.Certificate)
		if err != nil {
			// miekg/dns renders the binary wire data as hex, so this
			// guards only against a change there: a record that cannot
			// be read can authenticate nothing.
			continue
		}
		tlsa.Records = append(tlsa.Records, TLSARecord{Usage: t.Usage, Selector: t.Selector, MatchingType: t.MatchingType, Data: data})
	}
	return tlsa, nil
}
