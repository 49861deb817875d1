package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/dial"
)

// proxyHelp is the --proxy flag's usage line.
const proxyHelp = "reach the server through a proxy: socks5://[user[:pass]@]host:port, socks4://, socks4a://, http:// (CONNECT); " +
	"\"none\" ignores MAILSEC_PROXY/ALL_PROXY; the proxy password may come from MAILSEC_PROXY_PASSWORD"

// dialer returns the dialer for the connection, nil meaning direct. The
// proxy comes from --proxy, else MAILSEC_PROXY, else the account's proxy
// setting, else ALL_PROXY (or all_proxy): what is given for one run beats
// what the file says, and the file beats the environment every program
// shares. Loopback targets and NO_PROXY entries bypass the environment's
// proxies only; "--proxy none" (or "direct") turns every proxy off. send,
// probe and fetch all call it with their logger, so the handshake shows in
// --transcript and at the proxy log facility.
func (f *connFlags) dialer(log *slog.Logger) (dial.Dialer, error) {
	if err := f.resolve(); err != nil {
		return nil, err
	}
	var (
		d   dial.Dialer
		err error
	)
	switch f.proxy {
	case "none", "direct":
		return nil, nil
	case "":
		d, err = dial.FromEnv(os.Getenv, "MAILSEC_PROXY")
		if d == nil && err == nil && f.acctProxy != "" {
			d, err = parseProxy(f.acctProxy, "account "+f.accountName+" proxy")
		}
		if d == nil && err == nil {
			d, err = dial.FromEnv(os.Getenv, "ALL_PROXY", "all_proxy")
		}
	default:
		d, err = parseProxy(f.proxy, "--proxy")
		if err == nil && d.(*dial.Proxy).Password != "" {
			fmt.Fprintln(os.Stderr, "mailsec: warning: a password in --proxy is visible to other local users (ps); put it in MAILSEC_PROXY_PASSWORD instead")
		}
	}
	if err != nil || d == nil {
		return nil, err
	}
	p, ok := d.(*dial.Proxy)
	if b, isBypass := d.(*dial.Bypass); isBypass {
		p, ok = b.Proxy.(*dial.Proxy)
	}
	if ok {
		p.Logger, p.Transcript, p.HandshakeTimeout = log, f.transcriptWriter(), f.timeout
		if p.Username != "" && p.Password == "" && p.Kind != dial.SOCKS4 && p.Kind != dial.SOCKS4A {
			p.Password = os.Getenv("MAILSEC_PROXY_PASSWORD")
		}
	}
	return d, nil
}

// parseProxy reads a proxy URL; the error names where it came from, never
// the URL, which may hold a password.
func parseProxy(s, from string) (dial.Dialer, error) {
	p, err := dial.ParseURL(s)
	if err != nil {
		if me, ok := err.(*mailsec.Error); ok {
			me.Op = from
		}
		return nil, err
	}
	return p, nil
}
