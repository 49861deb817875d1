package relay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/dsn"
	"github.com/mailsec/mailsec/resolve"
	"github.com/mailsec/mailsec/sasl"
)

// Resolver is what the relay needs of DNS; *resolve.Resolver has it.
type Resolver interface {
	// LookupMX returns a domain's MX hosts in the order to try them.
	LookupMX(ctx context.Context, domain string) (*resolve.MX, error)
	// LookupAddrs returns a host's IPv4 and IPv6 addresses and whether
	// the answers were DNSSEC-authenticated.
	LookupAddrs(ctx context.Context, host string) ([]netip.Addr, bool, error)
	// LookupTLSA returns the TLSA records of a host's port (RFC 6698).
	LookupTLSA(ctx context.Context, host string, port int) (*resolve.TLSA, error)
}

// destination is where the mail of one recipient domain goes.
type destination struct {
	// key names the destination for concurrency limits and connection
	// reuse: the domain for MX delivery, "[host:port]" for a next hop.
	key string
	// domain is the recipient domain, the policy domain of MTA-STS and
	// TLS reports.
	domain string
	policy Policy
	auth   *sasl.Credentials
	port   int
	// hosts are the servers to try in order.
	hosts []target
	// mx is set for MX delivery (names checked under Verify are the MX
	// host names, which DNS, not the operator, supplied).
	mx bool
	// secure says the MX answer was DNSSEC-authenticated.
	secure bool
}

// target is one server of a destination.
type target struct {
	name   string
	addrs  []netip.Addr
	err    error // the address lookup failed (temporarily)
	secure bool  // the address answers were DNSSEC-authenticated
	hp     hostPolicy
}

// routeFor returns the route configured for domain, exact match first,
// then "*"; nil when none.
func (r *Relay) routeFor(domain string) *Route {
	var star *Route
	for i := range r.o.Routes {
		rt := &r.o.Routes[i]
		if strings.EqualFold(rt.Domain, domain) {
			return rt
		}
		if rt.Domain == "*" {
			star = rt
		}
	}
	return star
}

// resolveDestination finds where a domain's mail goes. A permanent
// failure (no such domain, null MX) comes back as a *failure with a 5xx
// status; anything else that fails is temporary.
func (r *Relay) resolveDestination(ctx context.Context, domain string) (*destination, *failure) {
	rt := r.routeFor(domain)
	switch {
	case rt != nil && rt.NextHop != "":
		return r.nextHop(ctx, domain, rt.NextHop, rt.Policy, nil)
	case rt == nil && r.o.Smarthost != nil:
		return r.nextHop(ctx, domain, r.o.Smarthost.Addr, r.o.Smarthost.Policy, r.o.Smarthost.Auth)
	}
	policy := r.o.Policy
	if rt != nil {
		policy = rt.Policy
	}
	mx, err := r.o.Resolver.LookupMX(ctx, domain)
	if err != nil {
		if resolve.Permanent(err) {
			// No such domain, or no address for any of its servers.
			return nil, newFailure("5.1.2", err, "no mail server for %s: %v", domain, err)
		}
		return nil, newFailure("4.4.3", err, "cannot look up the mail servers of %s", domain)
	}
	if mx.Null {
		// RFC 7505 section 4.1: the domain accepts no mail; section 4.2's
		// code for the refusal.
		return nil, newFailure("5.1.10", nil, "the domain %s accepts no mail (null MX, RFC 7505)", domain)
	}
	d := &destination{key: strings.ToLower(domain), domain: strings.ToLower(domain), policy: policy, port: r.o.Port,
		mx: true, secure: mx.Secure}
	for _, h := range mx.Hosts {
		d.hosts = append(d.hosts, target{name: h.Name, addrs: h.Addrs, err: h.Err, secure: h.Secure})
	}
	if len(d.hosts) == 0 {
		return nil, newFailure("4.4.4", nil, "no mail server of %s has an address", domain)
	}
	return d, nil
}

// nextHop is the destination of a route or the smarthost: one host,
// looked up by address only (no MX), as Postfix's "[host]:port".
func (r *Relay) nextHop(ctx context.Context, domain, hop string, policy Policy, auth *sasl.Credentials) (*destination, *failure) {
	host, port := hop, r.o.Port
	if h, p, err := net.SplitHostPort(hop); err == nil {
		host = h
		if port, err = strconv.Atoi(p); err != nil {
			return nil, newFailure("4.3.5", nil, "next hop %q has a bad port", hop)
		}
	}
	host = strings.Trim(host, "[]")
	d := &destination{key: "[" + net.JoinHostPort(host, strconv.Itoa(port)) + "]", domain: strings.ToLower(domain),
		policy: policy, port: port, auth: auth}
	if a, err := netip.ParseAddr(host); err == nil {
		d.hosts = []target{{name: host, addrs: []netip.Addr{a}}}
		return d, nil
	}
	if strings.EqualFold(host, "localhost") {
		// RFC 6761 section 6.3: localhost is the loopback interface,
		// whatever a DNS server might answer.
		d.hosts = []target{{name: host, addrs: []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}}}
		return d, nil
	}
	addrs, secure, err := r.o.Resolver.LookupAddrs(ctx, host)
	if err != nil || len(addrs) == 0 {
		// A configured next hop that does not resolve is the operator's
		// problem to fix, not the recipient's: defer, never bounce.
		return nil, newFailure("4.4.4", err, "cannot find the address of next hop %s", host)
	}
	d.hosts = []target{{name: host, addrs: addrs, secure: secure}}
	return d, nil
}

// failure is why a delivery attempt did not reach a recipient.
type failure struct {
	// status is the RFC 3463 code for notices; class 5 is permanent.
	status string
	// reply is the server's refusal, nil when no server refused.
	reply *mailsec.Reply
	// err is the cause, for its mailsec code.
	err    error
	detail string
}

// newFailure makes a failure whose status (4.x.x or 5.x.x) says whether
// it is temporary or permanent.
func newFailure(status string, err error, format string, args ...any) *failure {
	return &failure{status: status, err: err, detail: fmt.Sprintf(format, args...)}
}

// permanent reports whether the failure is final.
func (f *failure) permanent() bool { return strings.HasPrefix(f.status, "5") }

// replyFailure classes a server's refusal: its enhanced code when it gave
// a matching one (RFC 3463 section 3), else the reply class's generic one.
func replyFailure(rep *mailsec.Reply, err error, detail string) *failure {
	return &failure{status: dsn.StatusFromReply(rep.Code, rep.Enhanced), reply: rep, err: err, detail: detail}
}
