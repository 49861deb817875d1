package relay

import (
	"context"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec/dane"
	"github.com/mailsec/mailsec/mtasts"
	"github.com/mailsec/mailsec/tlsrpt"
)

// hostPolicy is how the relay secures its session with one host: the
// destination's level applied to what that host publishes.
type hostPolicy struct {
	// level names what applied, for the record: none, may, encrypt,
	// verify, dane, mta-sts (and "mta-sts testing").
	level string
	// base is the TLS behaviour: None, May, Encrypt or Verify; DANE hosts
	// have Encrypt with dane set.
	base Policy
	// dane holds the usable TLSA records of a DANE host (RFC 7672): the
	// certificate must match one of them; names are the reference
	// identifiers a DANE-TA match must name (section 3.2.2).
	dane  []dane.Record
	names []string
	// skip, when set, keeps the host out of this attempt: not in the
	// MTA-STS policy, a TLSA lookup that failed, no TLSA under dane-only.
	skip *failure
	// verified says the server's identity is authenticated (DANE, MTA-STS
	// enforce or verify), which a REQUIRETLS message needs (RFC 8689
	// section 4.2.1).
	verified bool
	// report is the policy as TLS reporting (RFC 8460) names it.
	report tlsrpt.Policy
}

// planHosts gives each host of an MX destination its policy. Lookups that
// fail never lower the protection: a TLSA lookup that fails defers that
// host (RFC 7672 section 2.2), it does not fall back to the MX's other
// policy. A REQUIRETLS message skips every host whose policy does not
// authenticate the server (RFC 8689 section 4.2.1: only to a server whose
// identity DANE, MTA-STS or the operator's verify policy authenticates).
func (r *Relay) planHosts(ctx context.Context, d *destination, h header, requireTLS bool) {
	r.planPolicies(ctx, d, h, requireTLS)
	if !requireTLS {
		return
	}
	for i := range d.hosts {
		t := &d.hosts[i]
		if t.hp.skip == nil && !t.hp.verified {
			t.hp.skip = newFailure("5.7.30", nil, "REQUIRETLS: the policy for %s (%s) does not authenticate the server, so the message cannot go there", t.name, t.hp.level)
		}
	}
}

// planPolicies is planHosts without the REQUIRETLS filter.
func (r *Relay) planPolicies(ctx context.Context, d *destination, h header, requireTLS bool) {
	level := d.policy
	// RFC 8689 section 3: "TLS-Required: No" asks that the recipient's
	// policies be ignored; a REQUIRETLS message ignores the field.
	if h.tlsOptional && !requireTLS && (level == Dane || level == DaneOnly || level == MTASTS) {
		level = May
	}
	if level == None || level == May || level == Encrypt || level == Verify {
		for i := range d.hosts {
			d.hosts[i].hp = hostPolicy{level: level.String(), base: level, verified: level == Verify,
				report: tlsrpt.Policy{Type: tlsrpt.PolicyNone, Domain: d.domain}}
		}
		return
	}
	// The MTA-STS policy is fetched when a host first needs it: where DANE
	// applies to every host it wins (RFC 8461 section 2) and no fetch is
	// made. MTA-STS is about a domain's MX hosts (section 4), not a next
	// hop the operator named.
	var sts *mtasts.Policy
	stsDone := level == DaneOnly || r.o.MTASTS == nil || !d.mx
	stsPolicy := func() *mtasts.Policy {
		if stsDone {
			return sts
		}
		stsDone = true
		res, err := r.o.MTASTS.Get(ctx, d.domain)
		switch {
		case err != nil:
			r.log.Warn("MTA-STS policy lookup failed", "domain", d.domain, "err", err)
		case res != nil && res.Policy != nil && res.Policy.Mode != mtasts.ModeNone:
			sts = res.Policy
		}
		if res != nil && res.FailureType != "" {
			r.reportFailure(tlsrpt.Policy{Type: tlsrpt.PolicySTS, Domain: d.domain}, tlsrpt.Failure{Result: tlsrpt.ResultType(res.FailureType)})
		}
		return sts
	}
	// RFC 7672 section 2.2.1: DANE only for MX hosts whose MX lookup was
	// itself DNSSEC-authenticated (a next hop named by the operator needs
	// only its own address records signed).
	useDane := (level == Dane || level == DaneOnly) && r.o.DNSSEC && (d.secure || !d.mx)
	for i := range d.hosts {
		t := &d.hosts[i]
		hp := &t.hp
		if useDane && t.secure {
			if r.planDane(ctx, d, t) {
				continue
			}
		}
		if level == DaneOnly {
			hp.skip = newFailure("4.7.5", nil, "policy dane-only: %s has no usable DNSSEC-signed TLSA records", t.name)
			hp.level = "dane-only"
			r.reportFailure(tlsrpt.Policy{Type: tlsrpt.PolicyTLSA, Domain: d.domain, MXHost: []string{t.name}},
				tlsrpt.Failure{Result: tlsrpt.DANERequired, ReceivingMXHostname: t.name})
			continue
		}
		if sts := stsPolicy(); sts != nil {
			rp := tlsrpt.Policy{Type: tlsrpt.PolicySTS, Domain: d.domain, Strings: stsStrings(sts), MXHost: sts.MX}
			if sts.Mode == mtasts.ModeEnforce {
				// RFC 8461 section 4.1: only MX hosts the policy names,
				// and section 4.2: with a certificate valid for the name.
				if !sts.Matches(t.name) {
					hp.skip = newFailure("4.7.5", nil, "%s is not an MX host of the MTA-STS policy of %s", t.name, d.domain)
					hp.level = "mta-sts"
					continue
				}
				*hp = hostPolicy{level: "mta-sts", base: Verify, verified: true, report: rp}
				continue
			}
			// Testing mode: deliver as usual, report what enforce would
			// have refused (section 5).
			*hp = hostPolicy{level: "mta-sts testing", base: May, report: rp}
			continue
		}
		*hp = hostPolicy{level: "may", base: May, report: tlsrpt.Policy{Type: tlsrpt.PolicyNone, Domain: d.domain}}
	}
}

// planDane looks up a host's TLSA records and, when usable ones are
// published, makes DANE its policy. It reports whether the host's policy
// is settled (DANE, or skipped because the lookup failed).
func (r *Relay) planDane(ctx context.Context, d *destination, t *target) bool {
	hp := &t.hp
	tlsa, err := r.o.Resolver.LookupTLSA(ctx, t.name, d.port)
	if err != nil {
		// RFC 7672 section 2.2: a lookup that fails is not "no records";
		// the host cannot be used now.
		hp.skip = newFailure("4.7.5", err, "the TLSA lookup for %s failed; not delivering without it", t.name)
		hp.level = "dane"
		r.reportFailure(tlsrpt.Policy{Type: tlsrpt.PolicyTLSA, Domain: d.domain, MXHost: []string{t.name}},
			tlsrpt.Failure{Result: tlsrpt.DNSSECInvalid, ReceivingMXHostname: t.name})
		return true
	}
	if !tlsa.Secure || len(tlsa.Records) == 0 {
		return false
	}
	recs := make([]dane.Record, len(tlsa.Records))
	strs := make([]string, len(tlsa.Records))
	for i, tr := range tlsa.Records {
		recs[i] = dane.Record(tr) // the same fields, by design of package dane
		strs[i] = tlsaString(recs[i])
	}
	rp := tlsrpt.Policy{Type: tlsrpt.PolicyTLSA, Domain: d.domain, Strings: strs, MXHost: []string{t.name}}
	usable := dane.Usable(recs)
	if len(usable) == 0 {
		// RFC 7672 section 2.2: records published but none usable still
		// mean the server has TLS; encrypt without authentication.
		*hp = hostPolicy{level: "dane", base: Encrypt, report: rp}
		return true
	}
	names := []string{t.name}
	if tlsa.Name != "" {
		base := strings.TrimPrefix(tlsa.Name, "_")
		if _, rest, ok := strings.Cut(base, "._tcp."); ok && !strings.EqualFold(rest, t.name) {
			names = append(names, rest)
		}
	}
	*hp = hostPolicy{level: "dane", base: Encrypt, dane: usable, names: names, verified: true, report: rp}
	return true
}

// reportFailure and reportSuccess feed TLS reporting when it is on.
func (r *Relay) reportFailure(p tlsrpt.Policy, f tlsrpt.Failure) {
	if r.o.TLSReports != nil {
		r.o.TLSReports.Failure(p, f)
	}
}

func (r *Relay) reportSuccess(p tlsrpt.Policy) {
	if r.o.TLSReports != nil {
		r.o.TLSReports.Success(p)
	}
}

// tlsaString is a TLSA record in presentation form, as TLS reports quote
// it (RFC 8460 section 4.4, policy-string).
func tlsaString(r dane.Record) string {
	return strconv.Itoa(int(r.Usage)) + " " + strconv.Itoa(int(r.Selector)) + " " +
		strconv.Itoa(int(r.MatchingType)) + " " + hex.EncodeToString(r.Data)
}

// stsStrings is an MTA-STS policy as its lines (RFC 8460 section 4.4).
func stsStrings(p *mtasts.Policy) []string {
	out := []string{"version: STSv1", "mode: " + string(p.Mode)}
	for _, m := range p.MX {
		out = append(out, "mx: "+m)
	}
	return append(out, "max_age: "+strconv.Itoa(int(p.MaxAge.Seconds())))
}
