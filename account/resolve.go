package account

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// apply sets one setting on an account. Keys map to themselves in known;
// a nil entry is an msmtp setting that mailsec accepts and ignores.
type apply func(a *Account, v string, tls *tlsKeys) error

// tlsKeys collects msmtp's two TLS switches, which only mean a mode
// together: tls on + tls_starttls on is STARTTLS, tls_starttls off is
// implicit TLS (msmtp's names for RFC 3207 and RFC 8314 section 3.3).
type tlsKeys struct {
	tls      string // on, off, or a mailsec mode name
	starttls string // on, off
}

var known = map[string]apply{
	"host": func(a *Account, v string, _ *tlsKeys) error { a.Host = v; return nil },
	"port": func(a *Account, v string, _ *tlsKeys) error {
		p, err := strconv.Atoi(v)
		if err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("port %q is not a number from 1 to 65535", v)
		}
		a.Port = p
		return nil
	},
	"from":   func(a *Account, v string, _ *tlsKeys) error { a.From = v; return nil },
	"domain": func(a *Account, v string, _ *tlsKeys) error { a.Domain = v; return nil },
	"timeout": func(a *Account, v string, _ *tlsKeys) error {
		if v == "off" {
			a.Timeout = 0
			return nil
		}
		s, err := strconv.Atoi(v)
		if err != nil || s < 1 {
			return fmt.Errorf("timeout %q is not a number of seconds or off", v)
		}
		a.Timeout = time.Duration(s) * time.Second
		return nil
	},
	"proxy": func(a *Account, v string, _ *tlsKeys) error {
		u, err := url.Parse(v)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return fmt.Errorf("proxy %q is not a URL like socks5://host:port", v)
		}
		a.Proxy = v
		return nil
	},
	"proxy_host": func(a *Account, v string, _ *tlsKeys) error {
		_, port := splitProxy(a.Proxy)
		a.Proxy = "socks5://" + net.JoinHostPort(v, port)
		return nil
	},
	"proxy_port": func(a *Account, v string, _ *tlsKeys) error {
		if p, err := strconv.Atoi(v); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("proxy_port %q is not a number from 1 to 65535", v)
		}
		host, _ := splitProxy(a.Proxy)
		a.Proxy = "socks5://" + net.JoinHostPort(host, v)
		return nil
	},
	"auth": func(a *Account, v string, _ *tlsKeys) error {
		switch v = strings.ToLower(v); v {
		case "on", "":
			a.Auth = "auto"
		case "off":
			a.Auth = "none"
		default:
			a.Auth = v
		}
		return nil
	},
	"user":         func(a *Account, v string, _ *tlsKeys) error { a.User = v; return nil },
	"password":     func(a *Account, v string, _ *tlsKeys) error { a.Password = v; return nil },
	"passwordeval": func(a *Account, v string, _ *tlsKeys) error { a.PasswordEval = v; return nil },
	"token_eval":   func(a *Account, v string, _ *tlsKeys) error { a.TokenEval = v; return nil },
	"tls": func(a *Account, v string, t *tlsKeys) error {
		switch v = strings.ToLower(v); v {
		case "", "on", "off", "implicit", "starttls", "starttls-optional", "none":
			if v == "" {
				v = "on"
			}
			t.tls = v
			return nil
		}
		return fmt.Errorf("tls %q: want on, off, implicit, starttls, starttls-optional or none", v)
	},
	"tls_starttls": func(a *Account, v string, t *tlsKeys) error {
		b, err := onOff("tls_starttls", v)
		t.starttls = b
		return err
	},
	"tls_trust_file": func(a *Account, v string, _ *tlsKeys) error {
		// msmtp's "system" means the system roots, which is our default.
		if v == "system" {
			v = ""
		}
		a.CAFile = v
		return nil
	},
	"tls_cert_file": func(a *Account, v string, _ *tlsKeys) error { a.CertFile = v; return nil },
	"tls_key_file":  func(a *Account, v string, _ *tlsKeys) error { a.KeyFile = v; return nil },
	"tls_certcheck": func(a *Account, v string, _ *tlsKeys) error {
		b, err := onOff("tls_certcheck", v)
		a.NoCertCheck = b == "off"
		return err
	},
	"tls_host_override": func(a *Account, v string, _ *tlsKeys) error { a.ServerName = v; return nil },
	"tls_fingerprint": func(a *Account, v string, _ *tlsKeys) error {
		// Only SHA-256: msmtp still takes SHA-1 and MD5, which no longer
		// identify a certificate against a forger.
		hex := strings.ReplaceAll(v, ":", "")
		if len(hex) != 64 || strings.Trim(strings.ToLower(hex), "0123456789abcdef") != "" {
			return fmt.Errorf("tls_fingerprint %q is not a SHA-256 fingerprint (32 hex bytes, colons optional); SHA-1 and MD5 are refused", v)
		}
		a.Fingerprints = append(a.Fingerprints, v)
		return nil
	},
	"pin": func(a *Account, v string, _ *tlsKeys) error {
		if !strings.HasPrefix(v, "sha256:") {
			return fmt.Errorf("pin %q: want sha256:BASE64", v)
		}
		a.Pins = append(a.Pins, v)
		return nil
	},
	"tls_min": func(a *Account, v string, _ *tlsKeys) error {
		if v != "1.2" && v != "1.3" {
			return fmt.Errorf("tls_min %q: want 1.2 or 1.3", v)
		}
		a.TLSMin = v
		return nil
	},
	"revocation": func(a *Account, v string, _ *tlsKeys) error {
		if v != "off" && v != "leaf" && v != "chain" {
			return fmt.Errorf("revocation %q: want off, leaf or chain", v)
		}
		a.Revocation = v
		return nil
	},
	// msmtp settings without a meaning here: logging, header rewriting,
	// aliases and the like. Accepted, so an existing ~/.msmtprc loads.
	"protocol": nil, "source_ip": nil, "socket": nil, "ntlmdomain": nil,
	"tls_crl_file": nil, "tls_priorities": nil, "tls_min_dh_prime_bits": nil,
	"from_full_name": nil, "allow_from_override": nil, "set_from_header": nil,
	"set_date_header": nil, "set_msgid_header": nil, "remove_bcc_headers": nil,
	"undisclosed_recipients": nil, "dsn_notify": nil, "dsn_return": nil,
	"add_missing_from_header": nil, "add_missing_date_header": nil,
	"logfile": nil, "logfile_time_format": nil, "syslog": nil, "aliases": nil,
	"auto_from": nil, "maildomain": nil,
}

func onOff(key, v string) (string, error) {
	switch v = strings.ToLower(v); v {
	case "", "on":
		return "on", nil
	case "off":
		return "off", nil
	}
	return "", fmt.Errorf("%s %q: want on or off", key, v)
}

// splitProxy returns the host and port of a socks5:// URL built from
// msmtp's proxy_host and proxy_port, in whichever order they come.
func splitProxy(proxy string) (string, string) {
	host, port, err := net.SplitHostPort(strings.TrimPrefix(proxy, "socks5://"))
	if err != nil {
		return "", "1080"
	}
	return host, port
}

// resolve turns a section's settings into an Account. msmtp's protocol
// setting is checked: an account for LMTP is not one mailsec can use.
func resolve(s *section) (*Account, error) {
	a := &Account{Name: s.name, Source: s.at}
	var t tlsKeys
	for _, st := range s.settings {
		fn := known[st.key]
		if fn == nil {
			if st.key == "protocol" && st.value != "smtp" {
				return nil, configErr(st.at, "protocol %q: mailsec speaks smtp here", st.value)
			}
			// Inheriting from an account that had the defaults too
			// repeats their settings; list each line once.
			if ig := fmt.Sprintf("%s (%s)", st.key, st.at); !slices.Contains(a.Ignored, ig) {
				a.Ignored = append(a.Ignored, ig)
			}
			continue
		}
		if err := fn(a, st.value, &t); err != nil {
			return nil, configErr(st.at, "%v", err)
		}
	}
	switch t.tls {
	case "implicit", "starttls", "starttls-optional", "none":
		a.TLS = t.tls
	case "off":
		a.TLS = "none"
	case "on":
		a.TLS = "starttls"
		if t.starttls == "off" {
			a.TLS = "implicit"
		}
	case "":
		if t.starttls == "off" {
			a.TLS = "implicit"
		}
	}
	if strings.HasPrefix(a.Proxy, "socks5://:") {
		return nil, configErr(s.at, "account %q has proxy_port but no proxy_host", s.name)
	}
	return a, nil
}
