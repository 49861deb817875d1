package dnstest

import (
	"testing"
	"time"

	"github.com/miekg/dns"
)

func exchange(t *testing.T, s *Server, network, name string, qtype uint16) *dns.Msg {
	t.Helper()
	req := new(dns.Msg).SetQuestion(name, qtype)
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	resp, _, err := c.Exchange(req, s.Addr())
	if err != nil {
		t.Fatalf("%s %s over %s: %v", name, dns.Type(qtype), network, err)
	}
	return resp
}

func TestServer(t *testing.T) {
	s := Start(t)
	s.Add(
		"example.test. 300 IN MX 10 mx.example.test.",
		"mx.example.test. 300 IN A 127.0.0.1",
		"alias.example.test. 300 IN CNAME MX.example.test.",
		"deep.sub.example.test. 300 IN TXT \"x\"",
	)
	for _, network := range []string{"udp", "tcp"} {
		resp := exchange(t, s, network, "EXAMPLE.test.", dns.TypeMX)
		if resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 1 || resp.Answer[0].(*dns.MX).Mx != "mx.example.test." {
			t.Errorf("%s MX: %v", network, resp)
		}
	}
	if resp := exchange(t, s, "udp", "example.test.", dns.TypeA); resp.Rcode != dns.RcodeSuccess || len(resp.Answer) != 0 {
		t.Errorf("NODATA expected: %v", resp)
	}
	if resp := exchange(t, s, "udp", "sub.example.test.", dns.TypeA); resp.Rcode != dns.RcodeSuccess {
		t.Errorf("empty non-terminal: NODATA expected: %v", resp)
	}
	if resp := exchange(t, s, "udp", "none.example.test.", dns.TypeA); resp.Rcode != dns.RcodeNameError {
		t.Errorf("NXDOMAIN expected: %v", resp)
	}
	resp := exchange(t, s, "udp", "alias.example.test.", dns.TypeA)
	if len(resp.Answer) != 2 || resp.Answer[0].Header().Rrtype != dns.TypeCNAME || resp.Answer[1].Header().Rrtype != dns.TypeA {
		t.Errorf("CNAME then A expected: %v", resp)
	}
	if resp := exchange(t, s, "udp", "alias.example.test.", dns.TypeCNAME); len(resp.Answer) != 1 {
		t.Errorf("CNAME alone expected: %v", resp)
	}

	s.SetADAll(true)
	s.SetAD("mx.example.test", false)
	if resp := exchange(t, s, "udp", "example.test.", dns.TypeMX); !resp.AuthenticatedData {
		t.Error("AD expected")
	}
	if resp := exchange(t, s, "udp", "alias.example.test.", dns.TypeA); resp.AuthenticatedData {
		t.Error("AD must be off when a name of the chain is not authenticated")
	}

	s.SetTruncate("example.test.", true)
	if resp := exchange(t, s, "udp", "example.test.", dns.TypeMX); !resp.Truncated || len(resp.Answer) != 0 {
		t.Errorf("truncated UDP answer expected: %v", resp)
	}
	if resp := exchange(t, s, "tcp", "example.test.", dns.TypeMX); resp.Truncated || len(resp.Answer) != 1 {
		t.Errorf("full TCP answer expected: %v", resp)
	}
	s.SetTruncate("example.test.", false)

	s.SetRcode("mx.example.test", dns.RcodeServerFailure)
	if resp := exchange(t, s, "udp", "alias.example.test.", dns.TypeA); resp.Rcode != dns.RcodeServerFailure || len(resp.Answer) != 0 {
		t.Errorf("SERVFAIL through the CNAME expected: %v", resp)
	}
	s.SetRcode("mx.example.test", dns.RcodeSuccess)

	s.Remove("mx.example.test", dns.TypeA)
	if resp := exchange(t, s, "udp", "mx.example.test.", dns.TypeA); resp.Rcode != dns.RcodeNameError {
		t.Errorf("NXDOMAIN after Remove expected: %v", resp)
	}

	s.SetDelay("example.test", 300*time.Millisecond)
	start := time.Now()
	exchange(t, s, "udp", "example.test.", dns.TypeMX)
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("answer after %v, before the delay", d)
	}

	before := s.Queries()
	exchange(t, s, "tcp", "example.test.", dns.TypeNS)
	if got := s.Queries() - before; got != 1 {
		t.Errorf("Queries grew by %d, want 1", got)
	}
}
