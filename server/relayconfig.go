package server

import (
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/relay"
)

// RelayConfig is the [relay] table: outbound delivery.
type RelayConfig struct {
	// Enabled lets authenticated submitters send to other domains; nil
	// (the key absent) means true.
	Enabled *bool `toml:"enabled"`
	// Resolver is the DNS server host:port; "" means /etc/resolv.conf's.
	Resolver string `toml:"resolver"`
	// Port is the destination port of MX delivery; 0 means 25.
	Port int `toml:"port"`
	// TLS is the default TLS policy (dane, dane-only, mta-sts, may,
	// encrypt, verify, none).
	TLS string `toml:"tls"`
	// TrustResolver trusts the AD bit of a resolver that is not on this
	// host, for DANE.
	TrustResolver bool `toml:"trust_resolver"`
	// MTASTS turns on MTA-STS policy fetching; nil means true.
	MTASTS *bool `toml:"mta_sts"`
	// TLSReports keeps daily TLS reports in <data_dir>/tlsrpt; nil means
	// true.
	TLSReports *bool `toml:"tls_reports"`
	// CAFile holds the roots the verify policy trusts; "" means the
	// system's.
	CAFile string `toml:"ca_file"`
	// Smarthost takes all mail without a route (host:port).
	Smarthost string `toml:"smarthost"`
	// SmarthostTLS is its TLS policy; "" means verify.
	SmarthostTLS string `toml:"smarthost_tls"`
	// SmarthostUser turns on AUTH with the smarthost.
	SmarthostUser string `toml:"smarthost_user"`
	// SmarthostPasswordFile holds the password (first line); else
	// $MAILSEC_SMARTHOST_PASSWORD. Never in the configuration itself.
	SmarthostPasswordFile string `toml:"smarthost_password_file"`
	// TrustedNetworks may relay without AUTH (CIDR prefixes).
	TrustedNetworks []string `toml:"trusted_networks"`
	// Lifetime, DelayNotice, BackoffMin and BackoffMax: see relay.Options.
	Lifetime    Duration `toml:"lifetime"`
	DelayNotice Duration `toml:"delay_notice"`
	BackoffMin  Duration `toml:"backoff_min"`
	BackoffMax  Duration `toml:"backoff_max"`
	// ConnectTimeout and CommandTimeout bound the outbound sessions.
	ConnectTimeout Duration `toml:"connect_timeout"`
	CommandTimeout Duration `toml:"command_timeout"`
	// Concurrency is per destination, Workers is messages at once.
	Concurrency int `toml:"concurrency"`
	Workers     int `toml:"workers"`
	// ConnectionReuse is how long an idle connection is kept.
	ConnectionReuse Duration `toml:"connection_reuse"`
	// LeaseTime is how long a node holds a message it is delivering
	// before another node may take it over; 0 means 15 minutes.
	LeaseTime Duration `toml:"lease_time"`
	// Routes are per-domain next hops and policies.
	Routes []RouteConfig `toml:"route"`
}

// RouteConfig is one [[relay.route]].
type RouteConfig struct {
	Domain  string `toml:"domain"`
	NextHop string `toml:"next_hop"`
	TLS     string `toml:"tls"`
}

// QueueConfig is the [queue] table.
type QueueConfig struct {
	// Backend is "embedded" (the default: <data_dir>/queue) or
	// "postgres" (a queue several nodes share).
	Backend string `toml:"backend"`
	// DSN is the PostgreSQL connection string (postgres backend), without
	// the password: that comes from $PGPASSWORD or a password file
	// ($PGPASSFILE, ~/.pgpass), never from the configuration or argv.
	DSN string `toml:"dsn"`
	// Node names this node in leases and logs; "" means host name and
	// process id.
	Node string `toml:"node"`
}

func configErr(key string, err error, format string, args ...any) error {
	e := mailsec.Errorf(mailsec.Config, "config", err, format, args...)
	e.Detail = key + ": " + e.Detail
	return e
}

func (q *QueueConfig) check() error {
	switch q.Backend {
	case "", "embedded":
		q.Backend = "embedded"
		return nil
	case "postgres":
		if q.DSN == "" {
			return configErr("queue.dsn", nil, "is empty; the postgres backend needs a connection string such as \"host=127.0.0.1 port=5432 user=mailsec dbname=mailsec\"")
		}
		if strings.Contains(strings.ToLower(q.DSN), "password") || strings.Contains(q.DSN, ":@") || passwordInURL(q.DSN) {
			return configErr("queue.dsn", nil, "holds a password; give it in $PGPASSWORD or a password file ($PGPASSFILE) instead")
		}
		return nil
	}
	return configErr("queue.backend", nil, "unknown queue backend %q (embedded, postgres)", q.Backend)
}

// passwordInURL reports a postgres:// URL with user:password@.
func passwordInURL(dsn string) bool {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		return false
	}
	_, set := u.User.Password()
	return set
}

func (r *RelayConfig) check() error {
	if _, err := relay.ParsePolicy(r.TLS); err != nil {
		return configErr("relay.tls", err, "%q is not a TLS policy (dane, dane-only, mta-sts, may, encrypt, verify, none)", r.TLS)
	}
	if r.Resolver != "" {
		if _, _, err := net.SplitHostPort(r.Resolver); err != nil {
			return configErr("relay.resolver", err, "%q is not host:port", r.Resolver)
		}
	}
	if r.Port < 0 || r.Port > 65535 {
		return configErr("relay.port", nil, "%d is not a port", r.Port)
	}
	if r.Smarthost != "" {
		if _, _, err := net.SplitHostPort(r.Smarthost); err != nil {
			return configErr("relay.smarthost", err, "%q is not host:port", r.Smarthost)
		}
		p, err := relay.ParsePolicy(r.smarthostTLS())
		if err != nil {
			return configErr("relay.smarthost_tls", err, "%q is not a TLS policy", r.SmarthostTLS)
		}
		if r.SmarthostUser != "" && p != relay.Encrypt && p != relay.Verify {
			return configErr("relay.smarthost_tls", nil, "AUTH with the smarthost needs encrypt or verify, not %q: the password must not cross the network in clear", r.SmarthostTLS)
		}
	}
	for _, n := range r.TrustedNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			return configErr("relay.trusted_networks", err, "%q is not a CIDR prefix", n)
		}
	}
	for name, d := range map[string]Duration{"relay.lifetime": r.Lifetime, "relay.delay_notice": r.DelayNotice,
		"relay.backoff_min": r.BackoffMin, "relay.backoff_max": r.BackoffMax, "relay.connect_timeout": r.ConnectTimeout,
		"relay.command_timeout": r.CommandTimeout, "relay.connection_reuse": r.ConnectionReuse, "relay.lease_time": r.LeaseTime} {
		if d < 0 {
			return configErr(name, nil, "must not be negative")
		}
	}
	bmin, bmax := time.Duration(r.BackoffMin), time.Duration(r.BackoffMax)
	if bmin == 0 {
		bmin = relay.DefaultBackoffMin
	}
	if bmax == 0 {
		bmax = relay.DefaultBackoffMax
	}
	if bmax < bmin {
		return configErr("relay.backoff_max", nil, "(%s) is below relay.backoff_min (%s)", bmax, bmin)
	}
	if r.Concurrency < 0 || r.Workers < 0 {
		return configErr("relay.concurrency", nil, "concurrency and workers must not be negative")
	}
	for i, rt := range r.Routes {
		key := "relay.route[" + strconv.Itoa(i+1) + "]"
		if rt.Domain == "" {
			return configErr(key+".domain", nil, "is empty")
		}
		if _, err := relay.ParsePolicy(rt.TLS); err != nil {
			return configErr(key+".tls", err, "%q is not a TLS policy", rt.TLS)
		}
		if rt.NextHop != "" && strings.ContainsAny(rt.NextHop, " /@") {
			return configErr(key+".next_hop", nil, "%q is not host or host:port", rt.NextHop)
		}
	}
	return nil
}

func (r *RelayConfig) smarthostTLS() string {
	if r.SmarthostTLS == "" {
		return "verify"
	}
	return r.SmarthostTLS
}

// smarthostPassword reads the smarthost password from its file or the
// environment, never from the configuration or the command line.
func (r *RelayConfig) smarthostPassword() (string, error) {
	if r.SmarthostPasswordFile == "" {
		if p := os.Getenv("MAILSEC_SMARTHOST_PASSWORD"); p != "" {
			return p, nil
		}
		return "", configErr("relay.smarthost_user", nil, "is set but neither relay.smarthost_password_file nor $MAILSEC_SMARTHOST_PASSWORD gives a password")
	}
	fi, err := os.Stat(r.SmarthostPasswordFile)
	if err != nil {
		return "", configErr("relay.smarthost_password_file", err, "cannot read it")
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", configErr("relay.smarthost_password_file", nil, "%s can be read by others (mode %o); chmod 600 it", r.SmarthostPasswordFile, fi.Mode().Perm())
	}
	b, err := os.ReadFile(r.SmarthostPasswordFile)
	if err != nil {
		return "", configErr("relay.smarthost_password_file", err, "cannot read it")
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimRight(line, "\r"), nil
}

// On reports whether relaying is enabled.
func (r *RelayConfig) On() bool { return orTrue(r.Enabled) }

// orTrue reads a boolean whose absence means true.
func orTrue(b *bool) bool { return b == nil || *b }
