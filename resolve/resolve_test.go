package resolve

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/dnstest"
)

func setup(t *testing.T) (*dnstest.Server, *Resolver) {
	t.Helper()
	s := dnstest.Start(t)
	return s, &Resolver{Server: s.Addr(), Timeout: 2 * time.Second}
}

func names(hosts []Host) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, h.Name)
	}
	return out
}

func TestPreferenceAndShuffle(t *testing.T) {
	s, r := setup(t)
	s.Add(
		"example.test. IN MX 20 c.example.test.",
		"example.test. IN MX 10 a.example.test.",
		"example.test. IN MX 10 b.example.test.",
		"example.test. IN MX 5 first.example.test.",
		"example.test. IN MX 30 A.example.test.", // duplicate of a, worse preference
		"a.example.test. IN A 127.0.0.1",
		"b.example.test. IN A 127.0.0.2",
		"c.example.test. IN A 127.0.0.3",
		"first.example.test. IN A 127.0.0.4",
	)
	orders := map[string]bool{}
	for range 64 {
		mx, err := r.LookupMX(context.Background(), "Example.Test.")
		if err != nil {
			t.Fatal(err)
		}
		got := names(mx.Hosts)
		if len(got) != 4 || got[0] != "first.example.test" || got[3] != "c.example.test" {
			t.Fatalf("hosts %v", got)
		}
		if mx.Domain != "example.test" || mx.Implicit || mx.Null || mx.Secure {
			t.Fatalf("MX %+v", mx)
		}
		for _, h := range mx.Hosts {
			if h.Name == "a.example.test" && h.Preference != 10 {
				t.Fatalf("duplicate kept its worse preference: %+v", h)
			}
		}
		orders[strings.Join(got[1:3], ",")] = true
	}
	if !orders["a.example.test,b.example.test"] || !orders["b.example.test,a.example.test"] {
		t.Errorf("equal preferences not shuffled: %v", orders)
	}
}

func TestImplicitMX(t *testing.T) {
	s, r := setup(t)
	s.Add("example.test. IN A 127.0.0.1", "example.test. IN AAAA ::1")
	mx, err := r.LookupMX(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{netip.MustParseAddr("::1"), netip.MustParseAddr("127.0.0.1")}
	if !mx.Implicit || len(mx.Hosts) != 1 || mx.Hosts[0].Name != "example.test" || mx.Hosts[0].Preference != 0 ||
		fmt.Sprint(mx.Hosts[0].Addrs) != fmt.Sprint(want) {
		t.Errorf("MX %+v", mx)
	}

	s.Add("noaddr.test. IN TXT \"v=spf1 -all\"")
	_, err = r.LookupMX(context.Background(), "noaddr.test")
	if !errors.Is(err, ErrNoAddress) || !Permanent(err) || errors.Is(err, ErrNoSuchDomain) {
		t.Errorf("no MX and no address: %v", err)
	}
}

func TestNullMX(t *testing.T) {
	s, r := setup(t)
	s.Add(
		"null.test. IN MX 0 .",
		"null.test. IN A 127.0.0.1",
		"mixed.test. IN MX 0 .",
		"mixed.test. IN MX 10 mx.mixed.test.",
		"mx.mixed.test. IN A 127.0.0.1",
	)
	mx, err := r.LookupMX(context.Background(), "null.test")
	if err != nil || !mx.Null || len(mx.Hosts) != 0 {
		t.Errorf("null MX: %+v, %v", mx, err)
	}
	mx, err = r.LookupMX(context.Background(), "mixed.test")
	if err != nil || mx.Null || fmt.Sprint(names(mx.Hosts)) != "[mx.mixed.test]" {
		t.Errorf("null MX among others: %+v, %v", mx, err)
	}
}

func TestNXDOMAIN(t *testing.T) {
	s, r := setup(t)
	_, err := r.LookupMX(context.Background(), "nx.test")
	if !Permanent(err) || !errors.Is(err, ErrNoSuchDomain) || !errors.Is(err, mailsec.DNS) {
		t.Fatalf("%v", err)
	}
	want := "MX lookup for nx.test: server " + s.Addr() + " answered NXDOMAIN"
	var me *mailsec.Error
	if !errors.As(err, &me) || me.Detail != want {
		t.Errorf("detail %q, want %q", me.Detail, want)
	}
}

func TestTemporaryRcodes(t *testing.T) {
	s, r := setup(t)
	for _, rc := range []int{dns.RcodeServerFailure, dns.RcodeRefused} {
		s.SetRcode("example.test", rc)
		_, err := r.LookupMX(context.Background(), "example.test")
		if err == nil || Permanent(err) || !errors.Is(err, mailsec.DNS) {
			t.Errorf("%s: %v", dns.RcodeToString[rc], err)
		} else if !strings.Contains(err.Error(), "MX lookup for example.test: server "+s.Addr()+" answered "+dns.RcodeToString[rc]) {
			t.Errorf("message: %v", err)
		}
	}
}

func TestTimeout(t *testing.T) {
	s, r := setup(t)
	s.Add("example.test. IN MX 10 mx.example.test.")
	s.SetDelay("example.test", 5*time.Second)
	r.Timeout = 100 * time.Millisecond
	start := time.Now()
	_, err := r.LookupMX(context.Background(), "example.test")
	if !errors.Is(err, mailsec.Timeout) || Permanent(err) {
		t.Errorf("%v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v", d)
	}
}

func TestCanceled(t *testing.T) {
	s, r := setup(t)
	s.SetDelay("example.test", 5*time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := r.LookupMX(ctx, "example.test")
	if !errors.Is(err, mailsec.Canceled) || Permanent(err) {
		t.Errorf("%v", err)
	}
}

func TestTCPFallback(t *testing.T) {
	s, r := setup(t)
	s.Add("example.test. IN MX 10 mx.example.test.", "mx.example.test. IN A 127.0.0.1")
	s.SetTruncate("example.test", true)
	before := s.Queries()
	resp, err := r.Query(context.Background(), "example.test", dns.TypeMX)
	if err != nil || len(resp.Answer) != 1 || resp.Truncated {
		t.Fatalf("%v, %v", resp, err)
	}
	if got := s.Queries() - before; got != 2 {
		t.Errorf("%d queries, want UDP then TCP", got)
	}
	if opt := resp.IsEdns0(); opt == nil || !opt.Do() {
		t.Error("EDNS0 with DO not echoed: not sent?")
	}

	// Real truncation: more A records than fit in 1232 bytes.
	for i := range 100 {
		s.Add(fmt.Sprintf("big.test. IN A 127.0.%d.%d", i/250, i%250+1))
	}
	addrs, _, err := r.LookupAddrs(context.Background(), "big.test")
	if err != nil || len(addrs) != maxAddrsPerFamily {
		t.Errorf("%v, %v", addrs, err)
	}
}

func TestSecure(t *testing.T) {
	s, r := setup(t)
	s.Add(
		"example.test. IN MX 10 mx1.example.test.",
		"example.test. IN MX 20 mx2.example.test.",
		"mx1.example.test. IN A 127.0.0.1",
		"mx1.example.test. IN AAAA ::1",
		"mx2.example.test. IN A 127.0.0.2",
	)
	s.SetADAll(true)
	s.SetAD("mx2.example.test", false)
	mx, err := r.LookupMX(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if !mx.Secure || !mx.Hosts[0].Secure || mx.Hosts[1].Secure {
		t.Errorf("MX secure %v, hosts %+v", mx.Secure, mx.Hosts)
	}
	s.SetAD("example.test", false)
	if mx, _ := r.LookupMX(context.Background(), "example.test"); mx.Secure {
		t.Error("MX answer without AD reported secure")
	}
}

func TestHostFailures(t *testing.T) {
	s, r := setup(t)
	s.Add(
		"example.test. IN MX 10 broken.example.test.",
		"example.test. IN MX 20 gone.example.test.",
		"example.test. IN MX 30 good.example.test.",
		"example.test. IN MX 40 noaddr.example.test.",
		"noaddr.example.test. IN TXT \"x\"",
		"good.example.test. IN A 127.0.0.1",
		"broken.example.test. IN A 127.0.0.9",
	)
	s.SetRcode("broken.example.test", dns.RcodeServerFailure)
	mx, err := r.LookupMX(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(names(mx.Hosts)) != "[broken.example.test good.example.test]" {
		t.Fatalf("hosts %v", names(mx.Hosts))
	}
	if h := mx.Hosts[0]; h.Err == nil || Permanent(h.Err) || len(h.Addrs) != 0 {
		t.Errorf("broken host %+v", h)
	}
	if h := mx.Hosts[1]; h.Err != nil || len(h.Addrs) != 1 {
		t.Errorf("good host %+v", h)
	}

	s.Add("dead.test. IN MX 10 gone.dead.test.", "dead.test. IN MX 10 noaddr.example.test.")
	_, err = r.LookupMX(context.Background(), "dead.test")
	if !Permanent(err) || !errors.Is(err, ErrNoAddress) || errors.Is(err, ErrNoSuchDomain) {
		t.Errorf("no usable host: %v", err)
	}
}

func TestAddrs(t *testing.T) {
	s, r := setup(t)
	s.Add(
		"mx.test. IN A 127.0.0.1",
		"mx.test. IN AAAA ::1",
		"v6.test. IN AAAA ::1",
		"alias.test. IN CNAME mx.test.",
		"example.test. IN MX 10 alias.test.",
		"half.test. IN A 127.0.0.1",
	)
	addrs, secure, err := r.LookupAddrs(context.Background(), "mx.test")
	if err != nil || secure || fmt.Sprint(addrs) != "[::1 127.0.0.1]" {
		t.Errorf("mx.test: %v %v %v", addrs, secure, err)
	}
	if addrs, _, err := r.LookupAddrs(context.Background(), "v6.test"); err != nil || fmt.Sprint(addrs) != "[::1]" {
		t.Errorf("v6.test: %v %v", addrs, err)
	}
	mx, err := r.LookupMX(context.Background(), "example.test")
	if err != nil || len(mx.Hosts) != 1 || mx.Hosts[0].Name != "alias.test" || fmt.Sprint(mx.Hosts[0].Addrs) != "[::1 127.0.0.1]" {
		t.Errorf("CNAME'd MX target: %+v %v", mx, err)
	}
	if _, _, err := r.LookupAddrs(context.Background(), "nx.test"); !errors.Is(err, ErrNoSuchDomain) {
		t.Errorf("nx.test: %v", err)
	}

	// A NODATA answer for one family leaves the other's addresses, and
	// its AD bit counts like any answer's.
	s.SetADAll(true)
	addrs, secure, err = r.LookupAddrs(context.Background(), "half.test")
	if err != nil || !secure || fmt.Sprint(addrs) != "[127.0.0.1]" {
		t.Errorf("half.test: %v %v %v", addrs, secure, err)
	}
}

func TestCaps(t *testing.T) {
	s, r := setup(t)
	for i := range 15 {
		s.Add(fmt.Sprintf("example.test. IN MX %d mx%d.example.test.", i, i), fmt.Sprintf("mx%d.example.test. IN A 127.0.0.1", i))
	}
	mx, err := r.LookupMX(context.Background(), "example.test")
	if err != nil || len(mx.Hosts) != maxHosts || mx.Hosts[maxHosts-1].Preference != maxHosts-1 {
		t.Errorf("%v %v", names(mx.Hosts), err)
	}
}

func TestNames(t *testing.T) {
	s, r := setup(t)
	s.Add("xn--bcher-kva.test. IN A 127.0.0.1", "_25._tcp.mx.test. IN TXT \"x\"")
	mx, err := r.LookupMX(context.Background(), "BÜCHER.test.")
	if err != nil || mx.Domain != "xn--bcher-kva.test" || !mx.Implicit {
		t.Errorf("IDNA: %+v %v", mx, err)
	}
	if _, err := r.Query(context.Background(), "_25._tcp.mx.test", dns.TypeTXT); err != nil {
		t.Errorf("underscore label: %v", err)
	}
	for _, bad := range []string{"", ".", "a..b", "a b.test", "a\\.b.test", strings.Repeat("a", 64) + ".test", "[127.0.0.1]", "bad\u200d\u0301.test"} {
		if _, err := r.LookupMX(context.Background(), bad); !errors.Is(err, mailsec.Data) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

// hostile answers every query with garbage, a wrong ID, the wrong question
// and an ID-less NOERROR before, if honest, the right answer.
func hostile(t *testing.T, honest bool) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := new(dns.Msg)
			if req.Unpack(buf[:n]) != nil {
				continue
			}
			reply := func(mutate func(*dns.Msg)) {
				m := new(dns.Msg).SetReply(req)
				m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: req.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(127, 0, 0, 66)}}
				mutate(m)
				wire, _ := m.Pack()
				pc.WriteTo(wire, from)
			}
			pc.WriteTo([]byte("\x00garbage that is no DNS message"), from)
			reply(func(m *dns.Msg) { m.Id ^= 1 })
			reply(func(m *dns.Msg) { m.Question[0].Name = "other.test." })
			reply(func(m *dns.Msg) { m.Question[0].Qtype = dns.TypeAAAA })
			reply(func(m *dns.Msg) { m.Question = nil })
			reply(func(m *dns.Msg) { m.Response = false })
			if honest {
				reply(func(m *dns.Msg) { m.Answer[0].(*dns.A).A = net.IPv4(127, 0, 0, 1) })
			}
		}
	}()
	return pc.LocalAddr().String()
}

func TestForgedAnswersIgnored(t *testing.T) {
	r := &Resolver{Server: hostile(t, true), Timeout: 2 * time.Second}
	resp, err := r.Query(context.Background(), "example.test", dns.TypeA)
	if err != nil {
		t.Fatal(err)
	}
	if a := resp.Answer[0].(*dns.A).A.String(); a != "127.0.0.1" {
		t.Errorf("accepted the forged answer %s", a)
	}

	r = &Resolver{Server: hostile(t, false), Timeout: 200 * time.Millisecond}
	if resp, err := r.Query(context.Background(), "example.test", dns.TypeA); !errors.Is(err, mailsec.Timeout) {
		t.Errorf("only forged answers: %v, %v", resp, err)
	}
}
