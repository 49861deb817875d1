package dial

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec"
)

// ParseURL reads a proxy URL:
//
//	socks5://[user:pass@]host[:port]   SOCKS5; socks5h:// is the same
//	socks4://[user@]host[:port]        SOCKS4 (names resolved locally)
//	socks4a://[user@]host[:port]       SOCKS4a (names resolved by the proxy)
//	http://[user:pass@]host[:port]     HTTP CONNECT with Basic auth
//
// The port defaults to 1080 for SOCKS and 80 for HTTP. User and password are
// percent-decoded. SOCKS5 always lets the proxy resolve names, so
// socks5:// and socks5h:// differ from curl's meaning only in that no
// local lookup ever leaks. Errors never repeat the URL, which may hold a
// password.
func ParseURL(s string) (*Proxy, error) {
	bad := func(format string, args ...any) (*Proxy, error) {
		return nil, mailsec.Errorf(mailsec.Config, "proxy URL", nil, format, args...)
	}
	u, err := url.Parse(s)
	if err != nil {
		// url.Parse quotes the whole URL in its error: keep it out.
		return bad("the proxy URL cannot be parsed (expected scheme://[user:pass@]host:port)")
	}
	p := &Proxy{}
	port := "1080"
	switch strings.ToLower(u.Scheme) {
	case "socks5", "socks5h":
		p.Kind = SOCKS5
	case "socks4":
		p.Kind = SOCKS4
	case "socks4a":
		p.Kind = SOCKS4A
	case "http":
		p.Kind, port = HTTPConnect, "80"
	case "":
		return bad("the proxy URL needs a scheme: socks5://, socks4://, socks4a:// or http://")
	default:
		return bad("unsupported proxy scheme %q (socks5, socks5h, socks4, socks4a, http)", printable([]byte(u.Scheme)))
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return bad("a proxy URL has only scheme, credentials, host and port")
	}
	host := u.Hostname()
	if host == "" {
		return bad("the proxy URL has no host")
	}
	if ps := u.Port(); ps != "" {
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || n == 0 {
			return bad("the proxy port %q is not a number from 1 to 65535", printable([]byte(ps)))
		}
		port = ps
	}
	p.Addr = net.JoinHostPort(host, port)
	if u.User != nil {
		p.Username = u.User.Username()
		pw, has := u.User.Password()
		p.Password = pw
		switch {
		case p.Kind == SOCKS4 || p.Kind == SOCKS4A:
			if has {
				return bad("SOCKS4 has no password, only a user ID: use socks4://user@host:port")
			}
		case p.Username == "":
			return bad("the proxy URL has a password but no user name")
		case p.Kind == SOCKS5 && (len(p.Username) > 255 || len(p.Password) > 255 || (has && p.Password == "")):
			return bad("SOCKS5 user name and password must each be 1 to 255 bytes (RFC 1929)")
		case p.Kind == HTTPConnect && strings.ContainsRune(p.Username, ':'):
			return bad("an HTTP proxy user name cannot contain ':' (RFC 7617 section 2)")
		}
	}
	return p, nil
}

// EnvVars are the variables FromEnv reads by default, in order of
// precedence: mailsec's own, then the one curl and others share.
var EnvVars = []string{"MAILSEC_PROXY", "ALL_PROXY", "all_proxy"}

// FromEnv returns the dialer the environment asks for: the proxy URL in the
// first of vars that is set (EnvVars when vars is empty), wrapped in a
// Bypass for NO_PROXY (or no_proxy). It returns nil when none is set.
// getenv is os.Getenv outside tests. The error names the variable, never
// its value.
func FromEnv(getenv func(string) string, vars ...string) (Dialer, error) {
	if len(vars) == 0 {
		vars = EnvVars
	}
	for _, name := range vars {
		v := getenv(name)
		if v == "" {
			continue
		}
		p, err := ParseURL(v)
		if err != nil {
			if me, ok := err.(*mailsec.Error); ok {
				me.Op = name
			}
			return nil, err
		}
		np := getenv("NO_PROXY")
		if np == "" {
			np = getenv("no_proxy")
		}
		return &Bypass{Proxy: p, NoProxy: np}, nil
	}
	return nil, nil
}

// Bypass sends targets through Proxy except loopback targets and those its
// NoProxy list names, which it dials directly. This is how a proxy set for
// a whole environment applies: a mail server on this machine is never
// reached through a proxy elsewhere, as curl and Go's HTTP client also do.
// A proxy the user names for one command does not need it.
type Bypass struct {
	// Proxy carries the targets not bypassed.
	Proxy Dialer
	// NoProxy is a NO_PROXY list: comma- or space-separated entries, each
	// "*" (everything), a domain ("example.com" or ".example.com": the
	// domain and its subdomains), an IP address or a CIDR prefix; an entry
	// may end in ":port" to match that port only. Empty bypasses only
	// loopback targets.
	NoProxy string
}

// DialContext dials addr directly when it is bypassed, else through Proxy.
func (b *Bypass) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	if b.Bypassed(addr) {
		return Direct.DialContext(ctx, network, addr)
	}
	return b.Proxy.DialContext(ctx, network, addr)
}

// Bypassed reports whether addr ("host:port") is dialed directly.
func (b *Bypass) Bypassed(addr string) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	ip := net.ParseIP(host)
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || (ip != nil && ip.IsLoopback()) {
		return true
	}
	for _, e := range strings.FieldsFunc(b.NoProxy, func(r rune) bool { return r == ',' || r == ' ' }) {
		e = strings.ToLower(e)
		if e == "*" {
			return true
		}
		if h, p, err := net.SplitHostPort(e); err == nil {
			if p != port {
				continue
			}
			e = h
		}
		e = strings.Trim(e, "[]")
		if _, cidr, err := net.ParseCIDR(e); err == nil {
			if ip != nil && cidr.Contains(ip) {
				return true
			}
			continue
		}
		if eip := net.ParseIP(e); eip != nil {
			if ip != nil && eip.Equal(ip) {
				return true
			}
			continue
		}
		e = strings.TrimSuffix(strings.TrimPrefix(e, "."), ".")
		if e != "" && (host == e || strings.HasSuffix(host, "."+e)) {
			return true
		}
	}
	return false
}
