// Package dnstest runs an in-process DNS server for tests, so that code
// which resolves names can be tested without the machine's resolver or the
// Internet. It listens on 127.0.0.1 only, on one port for both UDP and TCP,
// and answers like a recursive resolver would: it follows CNAMEs, can set
// the AD bit (pretending to be a validating resolver, RFC 4035 section
// 3.2.3) and can be told to fail, stall or truncate per name.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// maxChain bounds CNAME chasing so that a test zone with a CNAME loop
// still gets an answer.
const maxChain = 8

// Server is a running test DNS server. Its methods are safe for concurrent
// use, also while queries are being answered.
type Server struct {
	t    testing.TB
	addr string
	done chan struct{} // closed on cleanup so that delayed answers give up

	mu       sync.Mutex
	records  map[string][]dns.RR // by lower-case FQDN owner name
	rcode    map[string]int
	ad       map[string]bool
	adAll    bool
	delay    map[string]time.Duration
	truncate map[string]bool
	queries  int
}

// Start starts a server on a free loopback port and stops it when the test
// ends. The zone is empty until Add is called.
func Start(t testing.TB) *Server {
	t.Helper()
	pc, ln := listen(t)
	s := &Server{
		t:        t,
		addr:     pc.LocalAddr().String(),
		done:     make(chan struct{}),
		records:  map[string][]dns.RR{},
		rcode:    map[string]int{},
		ad:       map[string]bool{},
		delay:    map[string]time.Duration{},
		truncate: map[string]bool{},
	}
	var started sync.WaitGroup
	started.Add(2)
	udp := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: started.Done}
	tcp := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(s.serve), NotifyStartedFunc: started.Done}
	go udp.ActivateAndServe() // returns only on shutdown
	go tcp.ActivateAndServe() // returns only on shutdown
	// Shutdown refuses a server that has not started yet; waiting here keeps
	// a test that ends at once from leaking the sockets.
	started.Wait()
	t.Cleanup(func() {
		close(s.done)
		udp.Shutdown() // nothing to do about it in cleanup
		tcp.Shutdown()
	})
	return s
}

// listen binds UDP and TCP to the same loopback port. The UDP port is
// chosen by the kernel; TCP on that port may be taken by someone else, so
// a few ports are tried.
func listen(t testing.TB) (net.PacketConn, net.Listener) {
	t.Helper()
	var err error
	for range 20 {
		var pc net.PacketConn
		pc, err = net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("dnstest: %v", err)
		}
		var ln net.Listener
		ln, err = net.Listen("tcp4", pc.LocalAddr().String())
		if err == nil {
			return pc, ln
		}
		pc.Close()
	}
	t.Fatalf("dnstest: no port free for both UDP and TCP: %v", err)
	return nil, nil
}

// Addr returns the server's address, "127.0.0.1:port", the same for UDP
// and TCP.
func (s *Server) Addr() string { return s.addr }

// Add adds records given in zone-file syntax, for example
// "example.test. 300 IN MX 10 mx1.example.test.". A record that does not
// parse fails the test, so Add must be called from the test's goroutine.
func (s *Server) Add(rrs ...string) {
	t := s.t
	t.Helper()
	parsed := make([]dns.RR, 0, len(rrs))
	for _, text := range rrs {
		rr, err := dns.NewRR(text)
		if err != nil {
			t.Fatalf("dnstest: record %q: %v", text, err)
		}
		if rr == nil {
			t.Fatalf("dnstest: record %q is empty", text)
		}
		parsed = append(parsed, rr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range parsed {
		name := key(rr.Header().Name)
		s.records[name] = append(s.records[name], rr)
	}
}

// Remove removes the records of type qtype at name; dns.TypeANY removes
// all of them.
func (s *Server) Remove(name string, qtype uint16) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name = key(name)
	var kept []dns.RR
	for _, rr := range s.records[name] {
		if qtype != dns.TypeANY && rr.Header().Rrtype != qtype {
			kept = append(kept, rr)
		}
	}
	if len(kept) == 0 {
		delete(s.records, name)
		return
	}
	s.records[name] = kept
}

// SetRcode makes every query for name, of any type, fail with rcode
// (dns.RcodeServerFailure, dns.RcodeNameError, dns.RcodeRefused...) and
// no records. dns.RcodeSuccess restores normal answers. The rcode also
// applies when name is reached through a CNAME, as a recursive resolver
// reports the outcome for the end of the chain.
func (s *Server) SetRcode(name string, rcode int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if rcode == dns.RcodeSuccess {
		delete(s.rcode, key(name))
		return
	}
	s.rcode[key(name)] = rcode
}

// SetAD sets whether answers for name carry the AD bit, overriding
// SetADAll. An answer that follows CNAMEs has AD only if every name of the
// chain has it, as a validating resolver vouches for the whole answer
// (RFC 4035 section 3.2.3).
func (s *Server) SetAD(name string, ad bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ad[key(name)] = ad
}

// SetADAll sets whether answers carry the AD bit for names SetAD has not
// been called for. The default is false.
func (s *Server) SetADAll(ad bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adAll = ad
}

// SetDelay makes the server wait d before answering queries for name; 0
// answers at once. Waits are cut short when the test ends.
func (s *Server) SetDelay(name string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if d <= 0 {
		delete(s.delay, key(name))
		return
	}
	s.delay[key(name)] = d
}

// SetTruncate makes UDP answers for name come back with TC set and no
// records, so that clients must retry over TCP (RFC 7766 section 5). TCP
// answers are unaffected.
func (s *Server) SetTruncate(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !on {
		delete(s.truncate, key(name))
		return
	}
	s.truncate[key(name)] = true
}

// Queries returns how many queries the server has received, over UDP and
// TCP together.
func (s *Server) Queries() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries
}

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	s.mu.Lock()
	s.queries++
	var delay time.Duration
	if len(req.Question) == 1 {
		delay = s.delay[key(req.Question[0].Name)]
	}
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-s.done:
			return
		}
	}
	resp := s.answer(req, udp)
	if opt := req.IsEdns0(); opt != nil {
		// Echo EDNS0 as RFC 6891 section 6.1.1 requires of a server that
		// supports it, with the DO bit as RFC 3225 section 3 says.
		resp.SetEdns0(dns.DefaultMsgSize, opt.Do())
	}
	if udp {
		size := dns.MinMsgSize
		if opt := req.IsEdns0(); opt != nil {
			size = int(opt.UDPSize())
		}
		resp.Truncate(size)
	}
	w.WriteMsg(resp) // the client may be gone; nothing to do
}

// answer builds the reply to req from the zone, under the lock so that it
// sees one consistent state.
func (s *Server) answer(req *dns.Msg, udp bool) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.RecursionAvailable = true
	if req.Opcode != dns.OpcodeQuery || len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	q := req.Question[0]
	s.mu.Lock()
	defer s.mu.Unlock()
	name := key(q.Name)
	if udp && s.truncate[name] {
		resp.Truncated = true
		return resp
	}
	ad := true
	for range maxChain {
		if rc, ok := s.rcode[name]; ok {
			resp.Rcode = rc
			resp.Answer = nil
			return resp
		}
		if a, ok := s.ad[name]; ok {
			ad = ad && a
		} else {
			ad = ad && s.adAll
		}
		rrs := s.records[name]
		if q.Qtype != dns.TypeCNAME {
			if cname := find(rrs, dns.TypeCNAME); len(cname) > 0 {
				resp.Answer = append(resp.Answer, dns.Copy(cname[0]))
				name = key(cname[0].(*dns.CNAME).Target)
				continue
			}
		}
		for _, rr := range find(rrs, q.Qtype) {
			resp.Answer = append(resp.Answer, dns.Copy(rr))
		}
		if len(rrs) == 0 && !s.nonTerminal(name) {
			resp.Rcode = dns.RcodeNameError
		}
		break
	}
	resp.AuthenticatedData = ad
	return resp
}

// nonTerminal reports whether name owns no records but has names below it:
// such a name exists and gets NODATA, not NXDOMAIN (RFC 8020 section 2).
func (s *Server) nonTerminal(name string) bool {
	for owner := range s.records {
		if strings.HasSuffix(owner, "."+name) {
			return true
		}
	}
	return false
}

func find(rrs []dns.RR, qtype uint16) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		if rr.Header().Rrtype == qtype {
			out = append(out, rr)
		}
	}
	return out
}

// key is the form names are stored under: DNS names compare without regard
// to ASCII case (RFC 4343 section 2).
func key(name string) string { return dns.CanonicalName(name) }
