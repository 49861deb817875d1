package main

import (
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/dial"
)

// proxyOf returns the proxy a dialer leads to and whether the environment's
// loopback and NO_PROXY bypass applies.
func proxyOf(t *testing.T, d dial.Dialer) (*dial.Proxy, bool) {
	t.Helper()
	switch v := d.(type) {
	case *dial.Proxy:
		return v, false
	case *dial.Bypass:
		return v.Proxy.(*dial.Proxy), true
	}
	t.Fatalf("dialer %T", d)
	return nil, false
}

func TestDialerPrecedence(t *testing.T) {
	for _, tc := range []struct {
		name, flag, mailsecEnv, account, allProxy string
		want                                      string // proxy address, "" for direct
		bypass                                    bool
	}{
		{name: "nothing", want: ""},
		{name: "flag wins", flag: "socks5://f.test:1", mailsecEnv: "socks5://m.test:1", account: "socks5://a.test:1", allProxy: "socks5://e.test:1", want: "f.test:1"},
		{name: "MAILSEC_PROXY beats the account", mailsecEnv: "http://m.test:1", account: "socks5://a.test:1", allProxy: "socks5://e.test:1", want: "m.test:1", bypass: true},
		{name: "account beats ALL_PROXY", account: "socks4a://a.test:1", allProxy: "socks5://e.test:1", want: "a.test:1"},
		{name: "ALL_PROXY last", allProxy: "socks5://e.test:1", want: "e.test:1", bypass: true},
		{name: "none turns all off", flag: "none", mailsecEnv: "http://m.test:1", account: "socks5://a.test:1", want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("MAILSEC_PROXY", tc.mailsecEnv)
			t.Setenv("ALL_PROXY", tc.allProxy)
			t.Setenv("all_proxy", "")
			f := &connFlags{proxy: tc.flag}
			f.resolved, f.acctProxy, f.accountName = true, tc.account, "work"
			d, err := f.dialer(nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if d != nil {
					t.Fatalf("dialer %v, want direct", d)
				}
				return
			}
			p, bypass := proxyOf(t, d)
			if p.Addr != tc.want || bypass != tc.bypass {
				t.Fatalf("proxy %s (bypass %v), want %s (bypass %v)", p.Addr, bypass, tc.want, tc.bypass)
			}
		})
	}
}

func TestDialerPasswordAndErrors(t *testing.T) {
	t.Setenv("MAILSEC_PROXY_PASSWORD", "fr0m-env")
	f := &connFlags{proxy: "socks5://dave@p.test:1080", timeout: 7}
	f.resolved = true
	d, err := f.dialer(nil)
	if err != nil {
		t.Fatal(err)
	}
	if p, _ := proxyOf(t, d); p.Password != "fr0m-env" || p.HandshakeTimeout != 7 {
		t.Fatalf("password %q, timeout %v", p.Password, p.HandshakeTimeout)
	}
	for _, tc := range []struct{ flag, env, account, where string }{
		{flag: "gopher://u:Sup3r-s3cret@p.test", where: "--proxy"},
		{env: "socks5://u:Sup3r-s3cret@p.test:99999", where: "MAILSEC_PROXY"},
		{account: "socks4://u:Sup3r-s3cret@p.test", where: "account work proxy"},
	} {
		t.Setenv("MAILSEC_PROXY", tc.env)
		f := &connFlags{proxy: tc.flag}
		f.resolved, f.acctProxy, f.accountName = true, tc.account, "work"
		_, err := f.dialer(nil)
		if mailsec.CodeOf(err) != mailsec.Config || exitCode(err) != exitConfig ||
			!strings.HasPrefix(err.Error(), tc.where+": ") || strings.Contains(err.Error(), "Sup3r") {
			t.Errorf("%s: error %v", tc.where, err)
		}
	}
}
