// Package resolve is the DNS resolver of the outbound relay: it finds the
// mail servers of a domain (RFC 5321 section 5.1) and their addresses.
//
// It talks DNS itself with github.com/miekg/dns instead of using
// net.Resolver because the relay needs what net.Resolver hides:
//
//   - the AD bit of the answers of a local validating resolver, which
//     DANE builds on (RFC 7672 section 2.1): only records the resolver
//     authenticated may select TLSA-based authentication;
//   - control of the server queried, so that the trust in the AD bit is
//     placed in a known (loopback) resolver and tests can use their own;
//   - the retry over TCP of truncated answers, with EDNS0 and the DO bit;
//   - the exact rcode, because NXDOMAIN (the domain does not exist: bounce
//     the message) must not be confused with SERVFAIL or a timeout (try
//     again later).
package resolve

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"

	"github.com/mailsec/mailsec"
)

const (
	defaultTimeout = 5 * time.Second
	// udpSize is the EDNS0 buffer size of DNS Flag Day 2020, small enough
	// to avoid IP fragmentation, which off-path spoofing exploits.
	udpSize = 1232
	// maxHosts bounds the MX hosts tried so that a hostile domain cannot
	// make the relay issue hundreds of queries or connections per message.
	maxHosts = 10
	// maxAddrsPerFamily bounds the addresses kept per host and per address
	// family, for the same reason; bounding each family separately keeps
	// both families present even when one has many addresses.
	maxAddrsPerFamily = 5
	// maxChain bounds the CNAME chain followed inside one answer.
	maxChain = 8
)

// ErrNoSuchDomain is the cause of the errors that report an NXDOMAIN
// answer: the name does not exist. Test with errors.Is.
var ErrNoSuchDomain = errors.New("no such domain")

// ErrNoAddress is the cause of the errors that report that names exist
// but have no address records (NODATA for both A and AAAA), or that none
// of a domain's MX hosts exists or has an address. Test with errors.Is.
var ErrNoAddress = errors.New("no address records")

// Permanent reports whether err is a definite negative answer from DNS,
// one that retrying will not change: the name does not exist
// (ErrNoSuchDomain) or there is no address to deliver to (ErrNoAddress).
// Every other error (SERVFAIL, REFUSED, timeouts, network errors) is
// temporary, and the relay should defer rather than bounce.
func Permanent(err error) bool {
	return errors.Is(err, ErrNoSuchDomain) || errors.Is(err, ErrNoAddress)
}

// Resolver queries one DNS server. The zero value uses the system's first
// name server. A Resolver is safe for concurrent use.
type Resolver struct {
	// Server is the DNS server host:port; "" means the first nameserver
	// of /etc/resolv.conf (port 53), read once.
	Server string
	// Timeout bounds one query (UDP try + TCP retry); 0 means 5s.
	Timeout time.Duration
}

// Host is one server of a destination.
type Host struct {
	// Name is the host name, without trailing dot, in lower case.
	Name string
	// Preference is the MX preference; 0 for an implicit MX.
	Preference uint16
	// Addrs are the IPv6 addresses then the IPv4 ones, each family in
	// answer order; choosing among them is left to the dialer.
	Addrs []netip.Addr
	// Secure is true when every address answer that arrived had the AD bit
	// (RFC 7672 section 2.2.3: only then may DANE apply to the host).
	Secure bool
	// Err is the temporary failure of the address lookup, if any; the host
	// is then kept without addresses so that the relay defers rather than
	// bounces. Hosts that do not exist are left out of MX.Hosts instead.
	Err error
}

// MX is the result of LookupMX: where mail for Domain goes.
type MX struct {
	// Domain is the domain looked up, without trailing dot, in lower case
	// and in A-label form.
	Domain string
	// Hosts are ordered by preference, randomly among equal ones.
	Hosts []Host
	// Implicit is set when the domain has no MX records and Hosts is the
	// domain itself (RFC 5321 section 5.1).
	Implicit bool
	// Null is set when the domain publishes a null MX (RFC 7505): it
	// accepts no mail, and Hosts is empty.
	Null bool
	// Secure is set when the MX answer had the AD bit.
	Secure bool
}

// LookupMX finds the mail servers of domain and their addresses.
func (r *Resolver) LookupMX(ctx context.Context, domain string) (*MX, error) {
	fqdn, err := canonical(domain)
	if err != nil {
		return nil, err
	}
	resp, err := r.query(ctx, fqdn, dns.TypeMX)
	if err != nil {
		return nil, err
	}
	mx := &MX{Domain: display(fqdn), Secure: resp.AuthenticatedData}
	var records []*dns.MX
	for _, rr := range Chase(resp, fqdn, dns.TypeMX) {
		if m, ok := rr.(*dns.MX); ok {
			records = append(records, m)
		}
	}
	if len(records) == 0 {
		// RFC 5321 section 5.1: without MX records the domain itself is
		// the implicit MX, with preference 0, if it has an address.
		mx.Implicit = true
		addrs, secure, err := r.lookupAddrs(ctx, fqdn)
		if err != nil {
			return nil, err
		}
		mx.Hosts = []Host{{Name: mx.Domain, Addrs: addrs, Secure: secure}}
		return mx, nil
	}
	if len(records) == 1 && records[0].Mx == "." {
		// RFC 7505 section 3: a lone MX with the root as target says the
		// domain accepts no mail, whatever its preference.
		mx.Null = true
		return mx, nil
	}
	// RFC 7505 section 3 forbids mixing a null MX with others; when a
	// domain does it anyway, the real hosts are still worth trying.
	records = slices.DeleteFunc(records, func(m *dns.MX) bool { return m.Mx == "." })

	// RFC 5321 section 5.1: lowest preference first, and a random order
	// among equal preferences to spread the load. Shuffling before a
	// stable sort gives exactly that.
	rand.Shuffle(len(records), func(i, j int) { records[i], records[j] = records[j], records[i] })
	slices.SortStableFunc(records, func(a, b *dns.MX) int { return int(a.Preference) - int(b.Preference) })
	seen := map[string]bool{}
	var hosts []Host
	for _, m := range records {
		name := dns.CanonicalName(m.Mx)
		if seen[name] || len(hosts) == maxHosts {
			// A host listed twice keeps its best preference; trying it
			// again under a worse one would only repeat a failure.
			continue
		}
		seen[name] = true
		hosts = append(hosts, Host{Name: display(name), Preference: m.Preference})
	}

	var wg sync.WaitGroup
	for i := range hosts {
		wg.Go(func() {
			h := &hosts[i]
			h.Addrs, h.Secure, h.Err = r.lookupAddrs(ctx, dns.Fqdn(h.Name))
		})
	}
	wg.Wait()
	// A host that does not exist or has no address cannot take the mail;
	// section 5.1 says to go on with the next one.
	mx.Hosts = slices.DeleteFunc(hosts, func(h Host) bool { return Permanent(h.Err) })
	if len(mx.Hosts) == 0 {
		return nil, lookupError(mailsec.DNS, "MX", fqdn, ErrNoAddress, "none of the %d MX hosts exists or has an address", len(hosts))
	}
	return mx, nil
}

// LookupAddrs returns the IPv6 and IPv4 addresses of host, IPv6 first,
// querying AAAA and A in parallel. When one family has addresses, a
// failure of the other is not an error. secure is true when every answer
// that arrived had the AD bit.
func (r *Resolver) LookupAddrs(ctx context.Context, host string) (addrs []netip.Addr, secure bool, err error) {
	fqdn, err := canonical(host)
	if err != nil {
		return nil, false, err
	}
	return r.lookupAddrs(ctx, fqdn)
}

type family struct {
	addrs []netip.Addr
	ad    bool
	err   error
}

func (r *Resolver) lookupAddrs(ctx context.Context, fqdn string) ([]netip.Addr, bool, error) {
	var v4, v6 family
	var wg sync.WaitGroup
	wg.Go(func() { v4 = r.lookupFamily(ctx, fqdn, dns.TypeA) })
	wg.Go(func() { v6 = r.lookupFamily(ctx, fqdn, dns.TypeAAAA) })
	wg.Wait()
	if addrs := append(v6.addrs, v4.addrs...); len(addrs) > 0 {
		// A failed lookup vouches for no address, so only the answers
		// that arrived decide whether the addresses are secure.
		secure := (v4.err != nil || v4.ad) && (v6.err != nil || v6.ad)
		return addrs, secure, nil
	}
	switch {
	case v4.err != nil && !Permanent(v4.err):
		return nil, false, v4.err
	case v6.err != nil && !Permanent(v6.err):
		return nil, false, v6.err
	case errors.Is(v4.err, ErrNoSuchDomain) && errors.Is(v6.err, ErrNoSuchDomain):
		return nil, false, v4.err
	}
	return nil, false, lookupError(mailsec.DNS, "address", fqdn, ErrNoAddress, "the name has no A or AAAA records")
}

func (r *Resolver) lookupFamily(ctx context.Context, fqdn string, qtype uint16) family {
	resp, err := r.query(ctx, fqdn, qtype)
	if err != nil {
		return family{err: err}
	}
	f := family{ad: resp.AuthenticatedData}
	for _, rr := range Chase(resp, fqdn, qtype) {
		if len(f.addrs) == maxAddrsPerFamily {
			break
		}
		var ip net.IP
		switch rr := rr.(type) {
		case *dns.A:
			ip = rr.A.To4()
		case *dns.AAAA:
			ip = rr.AAAA.To16()
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			f.addrs = append(f.addrs, a)
		}
	}
	return f
}

// Query sends one query for name and qtype and returns the answer. It sets
// RD, since the server is meant to be a recursive resolver, and EDNS0 with
// the DO bit (RFC 3225 section 3) so that a validating resolver reports
// authenticated data (RFC 6840 section 5.8 makes DO a request for AD) and
// larger answers fit in UDP. A truncated UDP answer is retried over TCP.
//
// Whenever the server answered, the message is returned, also along with
// the error that an rcode other than NOERROR causes: NXDOMAIN gives an
// error matching ErrNoSuchDomain, every other rcode a temporary error.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) (*dns.Msg, error) {
	fqdn, err := canonical(name)
	if err != nil {
		return nil, err
	}
	return r.query(ctx, fqdn, qtype)
}

func (r *Resolver) query(ctx context.Context, fqdn string, qtype uint16) (*dns.Msg, error) {
	server, err := r.server()
	if err != nil {
		return nil, err
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = defaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	// SetQuestion draws the ID from crypto/rand and each exchange dials a
	// new socket, so the kernel picks a random source port: together the
	// unpredictability RFC 5452 section 9.2 asks for against forged answers.
	req := new(dns.Msg).SetQuestion(fqdn, qtype)
	req.SetEdns0(udpSize, true)
	wire, err := req.Pack()
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Data, "resolve", err, "cannot build the %s query for %s", dns.Type(qtype), display(fqdn))
	}
	what := dns.Type(qtype).String()
	resp, err := exchange(ctx, "udp", server, req, wire)
	if err == nil && resp.Truncated {
		// RFC 7766 section 5: a truncated answer is incomplete and must be
		// asked again over TCP, within the same time budget.
		resp, err = exchange(ctx, "tcp", server, req, wire)
	}
	if err != nil {
		switch {
		case errors.Is(ctx.Err(), context.Canceled):
			return nil, lookupError(mailsec.Canceled, what, fqdn, ctx.Err(), "canceled while querying server %s", server)
		case ctx.Err() != nil || isTimeout(err):
			return nil, lookupError(mailsec.Timeout, what, fqdn, err, "server %s did not answer in time", server)
		}
		return nil, lookupError(mailsec.DNS, what, fqdn, err, "cannot query server %s", server)
	}
	switch resp.Rcode {
	case dns.RcodeSuccess:
		return resp, nil
	case dns.RcodeNameError:
		return resp, lookupError(mailsec.DNS, what, fqdn, ErrNoSuchDomain, "server %s answered NXDOMAIN", server)
	}
	return resp, lookupError(mailsec.DNS, what, fqdn, nil, "server %s answered %s", server, rcodeName(resp.Rcode))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// exchange sends the query over network ("udp" or "tcp") and waits for its
// answer until ctx ends.
func exchange(ctx context.Context, network, server string, req *dns.Msg, wire []byte) (*dns.Msg, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	// The deadline covers timeouts; cancellation must unblock I/O too.
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()

	if network == "udp" {
		if _, err := conn.Write(wire); err != nil {
			return nil, err
		}
		buf := make([]byte, dns.MaxMsgSize)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return nil, err
			}
			// Anyone can send datagrams to our port. Garbage and answers
			// to other questions are dropped rather than fatal, so that a
			// spoofer cannot make the lookup fail, and the real answer can
			// still arrive (RFC 5452 section 9.1).
			resp := new(dns.Msg)
			if resp.Unpack(buf[:n]) == nil && answers(req, resp) {
				return resp, nil
			}
		}
	}

	// RFC 1035 section 4.2.2: over TCP each message has a two-byte length.
	msg := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(wire)), uint16(len(wire)))
	if _, err := conn.Write(append(msg, wire...)); err != nil {
		return nil, err
	}
	var length [2]byte
	if _, err := io.ReadFull(conn, length[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(length[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	resp := new(dns.Msg)
	if err := resp.Unpack(buf); err != nil {
		return nil, fmt.Errorf("malformed answer over TCP: %w", err)
	}
	if !answers(req, resp) {
		return nil, errors.New("the answer over TCP does not match the query")
	}
	return resp, nil
}

// answers reports whether resp is the answer to req: same ID, and the same
// question (RFC 5452 section 9.1).
func answers(req, resp *dns.Msg) bool {
	if resp.Id != req.Id || !resp.Response || resp.Opcode != dns.OpcodeQuery {
		return false
	}
	if len(resp.Question) == 0 {
		// Some servers leave the question out of error answers. Such an
		// answer carries no records to trust, and ignoring it would only
		// turn a quick failure into a timeout. A success without the
		// question, though, cannot be tied to the query.
		return resp.Rcode != dns.RcodeSuccess && resp.Rcode != dns.RcodeNameError
	}
	q, want := resp.Question[0], req.Question[0]
	return len(resp.Question) == 1 && q.Qtype == want.Qtype && q.Qclass == want.Qclass &&
		dns.CanonicalName(q.Name) == dns.CanonicalName(want.Name)
}

// Chase returns the records of type qtype that answer for name in resp,
// following the CNAME chain a recursive resolver includes, at most 8
// links. Records owned by names outside the chain are ignored: a server
// has no business answering for them, and accepting them would be cache
// poisoning by another name. Callers of Query use it to read the answer.
func Chase(resp *dns.Msg, name string, qtype uint16) []dns.RR {
	name = dns.CanonicalName(name)
	for range maxChain {
		var found []dns.RR
		next := ""
		for _, rr := range resp.Answer {
			h := rr.Header()
			if h.Class != dns.ClassINET || dns.CanonicalName(h.Name) != name {
				continue
			}
			if h.Rrtype == qtype {
				found = append(found, rr)
			} else if cname, ok := rr.(*dns.CNAME); ok && next == "" {
				next = dns.CanonicalName(cname.Target)
			}
		}
		if len(found) > 0 || next == "" {
			return found
		}
		name = next
	}
	return nil
}

// systemServer reads /etc/resolv.conf once: the relay's resolver does not
// change while it runs, and rereading it for every query would cost a file
// read per lookup.
var systemServer = sync.OnceValues(func() (string, error) {
	const path = "/etc/resolv.conf"
	conf, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return "", mailsec.Errorf(mailsec.Config, "resolve", err, "cannot read %s", path)
	}
	if len(conf.Servers) == 0 {
		return "", mailsec.Errorf(mailsec.Config, "resolve", nil, "no nameserver in %s", path)
	}
	return net.JoinHostPort(conf.Servers[0], "53"), nil
})

func (r *Resolver) server() (string, error) {
	if r.Server != "" {
		return r.Server, nil
	}
	return systemServer()
}

// canonical turns a domain as a user or a mail address gives it into the
// lower-case, fully qualified A-label form queried.
func canonical(name string) (string, error) {
	n := strings.TrimSuffix(name, ".")
	if strings.ContainsFunc(n, func(r rune) bool { return r >= 0x80 }) {
		// RFC 5890 section 2.3.2.1: DNS carries U-labels as A-labels.
		a, err := idna.Lookup.ToASCII(n)
		if err != nil {
			return "", mailsec.Errorf(mailsec.Data, "resolve", err, "invalid internationalized domain name %q", name)
		}
		n = a
	}
	if !validName(n) {
		return "", mailsec.Errorf(mailsec.Data, "resolve", nil, "invalid domain name %q", name)
	}
	return dns.CanonicalName(n), nil
}

// validName accepts letters, digits, hyphens and underscores (for TLSA and
// similar owner names) in labels of 1 to 63 bytes, 253 bytes in all (RFC
// 1035 section 2.3.4). Names come from mail addresses, i.e. from anyone;
// refusing the escapes and odd bytes DNS would carry keeps them out of
// queries and logs.
func validName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for label := range strings.SplitSeq(n, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range []byte(label) {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

func display(fqdn string) string { return strings.TrimSuffix(dns.CanonicalName(fqdn), ".") }

func rcodeName(rcode int) string {
	if s, ok := dns.RcodeToString[rcode]; ok {
		return s
	}
	return fmt.Sprintf("rcode %d", rcode)
}

// lookupError names the lookup in the detail, "MX lookup for example.test:
// server 127.0.0.1:53 answered SERVFAIL", so that a deferred or bounced
// message says which query failed where.
func lookupError(code mailsec.Code, what, fqdn string, cause error, format string, args ...any) *mailsec.Error {
	return mailsec.Errorf(code, "resolve", cause, "%s lookup for %s: %s", what, display(fqdn), fmt.Sprintf(format, args...))
}
