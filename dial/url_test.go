package dial

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		in         string
		kind       Kind
		addr       string
		user, pass string
	}{
		{"socks5://127.0.0.1:13080", SOCKS5, "127.0.0.1:13080", "", ""},
		{"socks5h://proxy.test", SOCKS5, "proxy.test:1080", "", ""},
		{"SOCKS5://u%40x:p%3Aw%2F@[::1]:9050", SOCKS5, "[::1]:9050", "u@x", "p:w/"},
		{"socks4://agent@10.0.0.1:1080/", SOCKS4, "10.0.0.1:1080", "agent", ""},
		{"socks4a://proxy.test:1081", SOCKS4A, "proxy.test:1081", "", ""},
		{"http://u:p@proxy.test", HTTPConnect, "proxy.test:80", "u", "p"},
		{"socks5://dave@proxy.test:1", SOCKS5, "proxy.test:1", "dave", ""},
	} {
		p, err := ParseURL(tc.in)
		if err != nil {
			t.Errorf("%s: %v", tc.in, err)
			continue
		}
		if p.Kind != tc.kind || p.Addr != tc.addr || p.Username != tc.user || p.Password != tc.pass {
			t.Errorf("%s: got %v %s %q %q", tc.in, p.Kind, p.Addr, p.Username, p.Password)
		}
	}
}

func TestParseURLRefusals(t *testing.T) {
	const secret = "Sup3r-s3cret"
	for _, in := range []string{
		"127.0.0.1:1080",
		"https://u:" + secret + "@proxy.test:443",
		"socks5://u:" + secret + "@proxy.test:99999",
		"socks5://u:" + secret + "@proxy.test:0",
		"socks5://u:" + secret + "@proxy.test:1080/path",
		"socks5://u:" + secret + "@proxy.test:1080?x=1",
		"socks5://:" + secret + "@proxy.test:1080",
		"socks5://u:@proxy.test:1080",
		"socks5://" + strings.Repeat("u", 256) + ":" + secret + "@proxy.test",
		"socks4://u:" + secret + "@proxy.test",
		"http://a%3Ab:" + secret + "@proxy.test",
		"socks5://u:" + secret + "@%zz:1080",
		"socks5://u:" + secret + "@:1080",
		"socks5://u:" + secret + "@proxy.test:1080#frag",
	} {
		_, err := ParseURL(in)
		if !errorsIsConfig(err) {
			t.Errorf("%q: error %v, want Config", in, err)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%q: the error repeats the password: %v", in, err)
		}
	}
}

func errorsIsConfig(err error) bool { return mailsec.CodeOf(err) == mailsec.Config }

func TestProxyStringRedacts(t *testing.T) {
	p, err := ParseURL("socks5://dave:d4ve-proxy@127.0.0.1:13080")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{p.String(), fmt.Sprint(p), fmt.Sprintf("%v %+v %#v %s", p, p, p, p)} {
		if strings.Contains(s, "d4ve-proxy") || strings.Contains(s, "dave") {
			t.Errorf("credentials printed: %s", s)
		}
	}
	if p.String() != "socks5://REDACTED@127.0.0.1:13080" {
		t.Errorf("String() = %s", p)
	}
}

func TestFromEnv(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	d, err := FromEnv(env(nil))
	if d != nil || err != nil {
		t.Fatalf("no variables: %v, %v", d, err)
	}
	d, err = FromEnv(env(map[string]string{"ALL_PROXY": "http://a.test:3128", "MAILSEC_PROXY": "socks5://m.test:1", "no_proxy": "corp.test"}))
	if err != nil {
		t.Fatal(err)
	}
	b := d.(*Bypass)
	if b.Proxy.(*Proxy).Addr != "m.test:1" || b.NoProxy != "corp.test" {
		t.Errorf("MAILSEC_PROXY must win over ALL_PROXY: %+v", b)
	}
	d, err = FromEnv(env(map[string]string{"ALL_PROXY": "http://a.test:3128", "MAILSEC_PROXY": "socks5://m.test:1"}), "ALL_PROXY")
	if err != nil || d.(*Bypass).Proxy.(*Proxy).Addr != "a.test:3128" {
		t.Errorf("FromEnv(ALL_PROXY): %v, %v", d, err)
	}
	_, err = FromEnv(env(map[string]string{"all_proxy": "ftp://u:Sup3r-s3cret@x"}))
	if !errorsIsConfig(err) || !strings.Contains(err.Error(), "all_proxy") || strings.Contains(err.Error(), "Sup3r") {
		t.Errorf("bad variable: %v", err)
	}
}

func TestBypass(t *testing.T) {
	b := &Bypass{NoProxy: "corp.test, .internal.test,10.0.0.0/8 192.0.2.9,[2001:db8::1]:25,mx.other.test:587"}
	for addr, want := range map[string]bool{
		"localhost:25":          true,
		"127.0.0.2:25":          true,
		"[::1]:587":             true,
		"corp.test:25":          true,
		"mail.corp.test:25":     true,
		"notcorp.test:25":       false,
		"a.internal.test:25":    true,
		"internal.test:25":      true,
		"10.1.2.3:25":           true,
		"11.1.2.3:25":           false,
		"192.0.2.9:465":         true,
		"[2001:db8::1]:25":      true,
		"[2001:db8::1]:587":     false,
		"mx.other.test:587":     true,
		"mx.other.test:25":      false,
		"smtp.example.test:587": false,
	} {
		if got := b.Bypassed(addr); got != want {
			t.Errorf("%s: bypassed %v, want %v", addr, got, want)
		}
	}
	if !(&Bypass{NoProxy: "*"}).Bypassed("smtp.example.test:587") {
		t.Error("* must bypass everything")
	}
}

func TestBypassDialsLoopbackDirectly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("direct"))
			c.Close()
		}
	}()
	// The proxy is unreachable: only a direct dial can succeed.
	b := &Bypass{Proxy: &Proxy{Kind: SOCKS5, Addr: "127.0.0.1:1"}}
	c, err := b.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, _ := io.ReadAll(c)
	if string(got) != "direct" {
		t.Fatalf("got %q", got)
	}
	_, err = b.DialContext(context.Background(), "tcp", "smtp.example.test:587")
	wantCode(t, err, mailsec.ProxyNoConn)
}
