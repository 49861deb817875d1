package resolve

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/mailsec/mailsec"
)

const (
	tlsaHex1 = "8cb0fc6c527506a053f4f14c8464bebbd6dede2738d11468dd953d7d6a3021f1"
	tlsaHex2 = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20"
)

func TestLookupTLSA(t *testing.T) {
	s, r := setup(t)
	s.Add(
		"_25._tcp.mx.example.test. 300 IN TLSA 3 1 1 "+tlsaHex1,
		"_25._tcp.mx.example.test. 300 IN TLSA 2 0 1 "+tlsaHex2,
		"mx.example.test. IN A 127.0.0.1",
	)
	s.SetAD("_25._tcp.mx.example.test", true)
	tlsa, err := r.LookupTLSA(context.Background(), "MX.example.test.", 25)
	if err != nil {
		t.Fatal(err)
	}
	if tlsa.Name != "_25._tcp.mx.example.test" || !tlsa.Secure || len(tlsa.Records) != 2 {
		t.Fatalf("%+v", tlsa)
	}
	want := []TLSARecord{{3, 1, 1, mustHex(t, tlsaHex1)}, {2, 0, 1, mustHex(t, tlsaHex2)}}
	for i, w := range want {
		g := tlsa.Records[i]
		if g.Usage != w.Usage || g.Selector != w.Selector || g.MatchingType != w.MatchingType || !bytes.Equal(g.Data, w.Data) {
			t.Errorf("record %d: %+v, want %+v", i, g, w)
		}
	}

	// The same records without AD are reported, but as insecure.
	s.SetAD("_25._tcp.mx.example.test", false)
	tlsa, err = r.LookupTLSA(context.Background(), "mx.example.test", 25)
	if err != nil || tlsa.Secure || len(tlsa.Records) != 2 {
		t.Errorf("insecure: %+v, %v", tlsa, err)
	}

	// Another port is another owner name.
	if tlsa, err := r.LookupTLSA(context.Background(), "mx.example.test", 465); err != nil || len(tlsa.Records) != 0 || tlsa.Name != "_465._tcp.mx.example.test" {
		t.Errorf("port 465: %+v, %v", tlsa, err)
	}
	for _, port := range []int{0, -1, 65536} {
		if _, err := r.LookupTLSA(context.Background(), "mx.example.test", port); !errors.Is(err, mailsec.Data) {
			t.Errorf("port %d: %v", port, err)
		}
	}
}

func TestLookupTLSANone(t *testing.T) {
	s, r := setup(t)
	s.Add(
		"nodata.test. IN A 127.0.0.1",
		"_25._tcp.nodata.test. IN TXT \"not a TLSA\"",
	)
	s.SetADAll(true)
	for _, host := range []string{"nodata.test", "nx.test"} {
		tlsa, err := r.LookupTLSA(context.Background(), host, 25)
		if err != nil || !tlsa.Secure || len(tlsa.Records) != 0 {
			t.Errorf("%s secure: %+v, %v", host, tlsa, err)
		}
	}
	s.SetADAll(false)
	for _, host := range []string{"nodata.test", "nx.test"} {
		tlsa, err := r.LookupTLSA(context.Background(), host, 25)
		if err != nil || tlsa.Secure || len(tlsa.Records) != 0 {
			t.Errorf("%s insecure: %+v, %v", host, tlsa, err)
		}
	}
}

func TestLookupTLSAFailures(t *testing.T) {
	s, r := setup(t)
	s.Add("_25._tcp.mx.example.test. IN TLSA 3 1 1 " + tlsaHex1)
	s.SetADAll(true)
	s.SetRcode("_25._tcp.mx.example.test", dns.RcodeServerFailure)
	tlsa, err := r.LookupTLSA(context.Background(), "mx.example.test", 25)
	if tlsa != nil || err == nil || Permanent(err) || !errors.Is(err, mailsec.DNS) {
		t.Errorf("SERVFAIL: %+v, %v", tlsa, err)
	} else if !strings.Contains(err.Error(), "TLSA lookup for _25._tcp.mx.example.test") {
		t.Errorf("message: %v", err)
	}

	s.SetRcode("_25._tcp.mx.example.test", dns.RcodeSuccess)
	s.SetDelay("_25._tcp.mx.example.test", 5*time.Second)
	r.Timeout = 100 * time.Millisecond
	tlsa, err = r.LookupTLSA(context.Background(), "mx.example.test", 25)
	if tlsa != nil || !errors.Is(err, mailsec.Timeout) || Permanent(err) {
		t.Errorf("timeout: %+v, %v", tlsa, err)
	}
}

func TestLookupTLSACNAME(t *testing.T) {
	s, r := setup(t)
	s.Add(
		"_25._tcp.mx.example.test. IN CNAME _25._tcp.mx.hoster.test.",
		"_25._tcp.mx.hoster.test. IN TLSA 3 1 1 "+tlsaHex1,
		// Records for a name outside the chain must not be picked up.
		"_25._tcp.other.test. IN TLSA 3 1 1 "+tlsaHex2,
	)
	s.SetADAll(true)
	tlsa, err := r.LookupTLSA(context.Background(), "mx.example.test", 25)
	if err != nil || !tlsa.Secure || len(tlsa.Records) != 1 || !bytes.Equal(tlsa.Records[0].Data, mustHex(t, tlsaHex1)) {
		t.Fatalf("%+v, %v", tlsa, err)
	}
	if tlsa.Name != "_25._tcp.mx.example.test" {
		t.Errorf("name %q", tlsa.Name)
	}

	// The AD bit covers the whole chain: one insecure link makes the
	// answer insecure.
	s.SetAD("_25._tcp.mx.hoster.test", false)
	if tlsa, err := r.LookupTLSA(context.Background(), "mx.example.test", 25); err != nil || tlsa.Secure {
		t.Errorf("insecure target: %+v, %v", tlsa, err)
	}

	// A failure at the end of the chain is a failure of the lookup.
	s.SetRcode("_25._tcp.mx.hoster.test", dns.RcodeServerFailure)
	if tlsa, err := r.LookupTLSA(context.Background(), "mx.example.test", 25); err == nil || Permanent(err) {
		t.Errorf("SERVFAIL at target: %+v, %v", tlsa, err)
	}
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
