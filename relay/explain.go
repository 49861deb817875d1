package relay

import (
	"context"
	"net"
	"strconv"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/mtasts"
)

// Plan says how the relay would deliver to a domain now, and why: what
// "mailsec probe --mx" shows. It is computed by the same code as a
// delivery, so it cannot say one thing while the relay does another.
type Plan struct {
	Domain string `json:"domain"`
	// NextHop is the route's or smarthost's host:port, "" for MX delivery.
	NextHop string `json:"next_hop,omitempty"`
	// Policy is the level configured for the domain.
	Policy string `json:"policy"`
	// DNSSEC says the resolver's verdicts are trusted; MXSecure that the
	// MX answer was authenticated.
	DNSSEC   bool `json:"dnssec_trusted"`
	MXSecure bool `json:"mx_dnssec"`
	// MTASTS is the domain's MTA-STS policy as the relay holds it.
	MTASTS *STSInfo `json:"mta_sts,omitempty"`
	// Hosts are the servers in the order they would be tried.
	Hosts []PlanHost `json:"hosts"`
	// Error is why the domain gets no delivery at all (null MX, no such
	// domain, lookup failure), "" otherwise; Permanent says it bounces.
	Error     string `json:"error,omitempty"`
	Permanent bool   `json:"permanent,omitempty"`

	d *destination
}

// STSInfo is an MTA-STS policy in a Plan.
type STSInfo struct {
	Mode   string        `json:"mode,omitempty"`
	MX     []string      `json:"mx,omitempty"`
	MaxAge time.Duration `json:"max_age,omitempty"`
	ID     string        `json:"id,omitempty"`
	Source string        `json:"source,omitempty"`
	Error  string        `json:"error,omitempty"`
}

// PlanHost is one server of a Plan.
type PlanHost struct {
	Name  string   `json:"name"`
	Addrs []string `json:"addrs"`
	// Secure says the address answers were DNSSEC-authenticated.
	Secure bool `json:"dnssec"`
	// Policy is what applies to this host: dane, mta-sts, may, ...;
	// Authenticated says the server's identity would be checked.
	Policy        string `json:"policy"`
	Authenticated bool   `json:"authenticated"`
	// TLSA lists the usable records when DANE applies.
	TLSA []string `json:"tlsa,omitempty"`
	// Skipped says why the host would not be used now.
	Skipped string `json:"skipped,omitempty"`
}

// Explain plans a delivery to domain without sending anything.
func (r *Relay) Explain(ctx context.Context, domain string) *Plan {
	p := &Plan{Domain: domain, DNSSEC: r.o.DNSSEC}
	rt := r.routeFor(domain)
	p.Policy = r.o.Policy.String()
	if rt != nil {
		p.Policy = rt.Policy.String()
	}
	d, f := r.resolveDestination(ctx, domain)
	if f != nil {
		p.Error, p.Permanent = f.detail, f.permanent()
		return p
	}
	p.d = d
	p.Policy = d.policy.String()
	p.MXSecure = d.secure
	if !d.mx {
		p.NextHop = net.JoinHostPort(d.hosts[0].name, strconv.Itoa(d.port))
	}
	if r.o.MTASTS != nil && d.mx {
		if res, err := r.o.MTASTS.Get(ctx, d.domain); err != nil {
			p.MTASTS = &STSInfo{Error: err.Error()}
		} else if res != nil {
			si := &STSInfo{Source: string(res.Source)}
			if res.Err != nil {
				si.Error = res.Err.Error()
			}
			if pol := res.Policy; pol != nil {
				si.Mode, si.MX, si.MaxAge, si.ID = string(pol.Mode), pol.MX, pol.MaxAge, pol.ID
			}
			if si.Source != string(mtasts.SourceNone) || si.Error != "" {
				p.MTASTS = si
			}
		}
	}
	r.planHosts(ctx, d, header{}, false)
	for _, t := range d.hosts {
		h := PlanHost{Name: t.name, Secure: t.secure, Policy: t.hp.level, Authenticated: t.hp.verified}
		for _, a := range t.addrs {
			h.Addrs = append(h.Addrs, a.String())
		}
		for _, rec := range t.hp.dane {
			h.TLSA = append(h.TLSA, tlsaString(rec))
		}
		switch {
		case t.hp.skip != nil:
			h.Skipped = t.hp.skip.detail
		case len(t.addrs) == 0 && t.err != nil:
			h.Skipped = t.err.Error()
		}
		p.Hosts = append(p.Hosts, h)
	}
	return p
}

// HostCheck is what a test session with one host of a Plan found.
type HostCheck struct {
	Addr string `json:"addr"`
	// OK says a session was set up as the host's policy demands (so a
	// delivery would get past TLS).
	OK bool `json:"ok"`
	// TLS is the record a delivery would keep: version, suite, verdict
	// (dane-matched, verified, untrusted, name-mismatch).
	Version     string `json:"tls_version,omitempty"`
	CipherSuite string `json:"tls_cipher,omitempty"`
	Verdict     string `json:"certificate,omitempty"`
	// Error is why the session failed, with its mailsec code.
	Error string `json:"error,omitempty"`
	Code  string `json:"code,omitempty"`
	// RequireTLS says the server offers REQUIRETLS (RFC 8689).
	RequireTLS bool `json:"requiretls"`
}

// Check opens a session with host i of the plan (its first address), as a
// delivery would, then ends it with QUIT: no mail is sent.
func (r *Relay) Check(ctx context.Context, p *Plan, i int) *HostCheck {
	t := &p.d.hosts[i]
	if len(t.addrs) == 0 {
		return &HostCheck{Error: "no address"}
	}
	addr := net.JoinHostPort(t.addrs[0].String(), strconv.Itoa(p.d.port))
	hc := &HostCheck{Addr: addr}
	s, f := r.dial(ctx, p.d, &t.hp, t.hp.base, t.name, addr)
	if f != nil {
		hc.Error = f.detail
		if c := mailsec.CodeOf(f.err); c != 0 {
			hc.Code = c.String()
		}
		return hc
	}
	defer quit(s)
	hc.OK = true
	hc.Version, hc.CipherSuite, hc.Verdict = s.tls.Version, s.tls.CipherSuite, s.tls.Verdict
	hc.RequireTLS, _ = s.c.Extension("REQUIRETLS")
	return hc
}
