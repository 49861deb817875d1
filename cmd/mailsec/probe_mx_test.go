package main

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/dnstest"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/smtpd"
)

// probe --mx explains a domain the way the relay sees it: a signed MX
// with a matching TLSA record is DANE, the served certificate matches,
// and a second host without TLSA falls back to may.
func TestProbeMX(t *testing.T) {
	cert, _ := wiretest.SelfSigned(t, "mx1.example.test")
	ln, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	srv := &smtpd.Server{Hostname: "mx1.example.test", Backend: smtpd.Discard{},
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}}
	go srv.Serve(ln, smtpd.MX, smtpd.TLSMay)
	defer ln.Close()

	dns := dnstest.Start(t)
	dns.SetADAll(true)
	sum := sha256.Sum256(cert.Leaf.RawSubjectPublicKeyInfo)
	dns.Add("example.test. 300 IN MX 10 mx1.example.test.", "mx1.example.test. 300 IN A 127.0.0.2",
		"example.test. 300 IN MX 20 mx2.example.test.", "mx2.example.test. 300 IN A 127.0.0.3",
		fmt.Sprintf("_%d._tcp.mx1.example.test. 300 IN TLSA 3 1 1 %s", port, hex.EncodeToString(sum[:])))

	human, _ := runCLI(t, "probe", "--mx", "example.test", "--resolver", dns.Addr(), "--mx-port", strconv.Itoa(port), "--timeout", "3s")
	if !strings.Contains(human, "policy:    dane, server authenticated") || !strings.Contains(human, "certificate dane-matched") {
		t.Errorf("human output:\n%s", human)
	}
	out, code := runCLI(t, "probe", "--mx", "example.test", "--resolver", dns.Addr(), "--mx-port", strconv.Itoa(port),
		"--timeout", "3s", "--json")
	var res mxProbe
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("exit %d, not JSON: %v\n%s", code, err, out)
	}
	p := res.Plan
	if p == nil || !p.DNSSEC || !p.MXSecure || len(p.Hosts) != 2 {
		t.Fatalf("plan %+v", p)
	}
	h := p.Hosts[0]
	if h.Name != "mx1.example.test" || h.Policy != "dane" || !h.Authenticated || len(h.TLSA) != 1 ||
		!strings.HasPrefix(h.TLSA[0], "3 1 1 ") {
		t.Errorf("first host %+v", h)
	}
	if c := res.Checks[0]; c == nil || !c.OK || c.Verdict != "dane-matched" || !c.RequireTLS {
		t.Errorf("session with the DANE host: %+v", c)
	}
	if h2 := p.Hosts[1]; h2.Policy != "may" || h2.Authenticated {
		t.Errorf("second host %+v", h2)
	}
	if c := res.Checks[1]; c == nil || c.OK || c.Code != "TCPConnect" {
		t.Errorf("nothing listens on the second host, yet: %+v", c)
	}
}
