package server

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailsec/mailsec/metrics"
	"github.com/mailsec/mailsec/mtasts"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/queue/embedded"
	"github.com/mailsec/mailsec/queue/postgres"
	"github.com/mailsec/mailsec/relay"
	"github.com/mailsec/mailsec/resolve"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/store"
	"github.com/mailsec/mailsec/tlsconf"
	"github.com/mailsec/mailsec/tlsrpt"
	"github.com/mailsec/mailsec/userdb"
)

// QueueDir is where the embedded queue of a data directory lives.
func QueueDir(dataDir string) string { return filepath.Join(dataDir, "queue") }

// OpenQueue opens the queue a configuration names, for mailsec serve and
// for the queue commands when no server is running.
func OpenQueue(c *Config, log *slog.Logger) (queue.Queue, error) {
	if c.Queue.Backend == "postgres" {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		return postgres.Open(ctx, c.Queue.DSN, &postgres.Options{Logger: log, Node: c.Queue.Node,
			SpoolDir: filepath.Join(QueueDir(c.DataDir), "spool")})
	}
	return embedded.Open(QueueDir(c.DataDir), &embedded.Options{Logger: log})
}

// startRelay opens the queue and starts delivering from it.
func (s *Server) startRelay(c *Config, log *slog.Logger) error {
	q, err := OpenQueue(c, log)
	if err != nil {
		return err
	}
	s.queue = q
	o, err := RelayOptions(c, log)
	if err != nil {
		q.Close()
		return err
	}
	o.Queue = q
	if l, ok := q.(relay.Limiter); ok {
		// A shared queue counts the connections to each destination over
		// all nodes.
		o.Limiter = l
	}
	o.Local = localStore{st: s.env.Store, users: s.env.Users, domains: c.Domains}
	if orTrue(c.Relay.TLSReports) {
		s.tlsReports = &tlsrpt.Store{Dir: TLSReportDir(c.DataDir)}
		o.TLSReports = s.tlsReports
	}
	if m := s.env.Metrics; m != nil {
		o.Observer = relayObserver{m}
		m.WatchQueue(func() (metrics.QueueStats, error) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			st, err := q.Stats(ctx)
			ms := metrics.QueueStats{Messages: st.Messages, Recipients: st.Recipients, Deferred: st.Deferred, Octets: st.Octets}
			if !st.Oldest.IsZero() {
				ms.OldestAge = time.Since(st.Oldest)
			}
			return ms, err
		})
	}
	r, err := relay.New(o)
	if err != nil {
		q.Close()
		return err
	}
	s.relay = r
	r.Start()
	return nil
}

// RelayOptions builds the relay's options from the configuration: DNS,
// policies, routes, smarthost, MTA-STS, timings. The caller adds the
// queue, local delivery, reports and metrics; "mailsec probe --mx" uses
// the options as they are, to explain what the relay would do.
func RelayOptions(c *Config, log *slog.Logger) (relay.Options, error) {
	rc := &c.Relay
	res := &resolve.Resolver{Server: rc.Resolver}
	o := relay.Options{
		Hostname:        c.Hostname,
		Resolver:        res,
		DNSSEC:          res.Local() || rc.TrustResolver,
		Port:            rc.Port,
		Lifetime:        time.Duration(rc.Lifetime),
		DelayNotice:     time.Duration(rc.DelayNotice),
		BackoffMin:      time.Duration(rc.BackoffMin),
		BackoffMax:      time.Duration(rc.BackoffMax),
		ConnectTimeout:  time.Duration(rc.ConnectTimeout),
		CommandTimeout:  time.Duration(rc.CommandTimeout),
		Concurrency:     rc.Concurrency,
		Workers:         rc.Workers,
		ConnectionReuse: time.Duration(rc.ConnectionReuse),
		LeaseTime:       time.Duration(rc.LeaseTime),
		Logger:          log,
	}
	o.Policy, _ = relay.ParsePolicy(rc.TLS) // checked with the configuration
	if rc.CAFile != "" {
		pool, err := tlsconf.LoadCAFile(rc.CAFile)
		if err != nil {
			return o, configErr("relay.ca_file", err, "cannot load %s", rc.CAFile)
		}
		o.RootCAs = pool
	}
	daneOnly := o.Policy == relay.DaneOnly
	for _, rt := range rc.Routes {
		p, _ := relay.ParsePolicy(rt.TLS)
		if rt.TLS == "" {
			p = o.Policy
		}
		daneOnly = daneOnly || p == relay.DaneOnly
		o.Routes = append(o.Routes, relay.Route{Domain: rt.Domain, NextHop: rt.NextHop, Policy: p})
	}
	if !o.DNSSEC {
		addr, _ := res.ServerAddr()
		if daneOnly {
			return o, configErr("relay.tls", nil, "dane-only needs a validating resolver on this host, and %s is not a loopback address; run one (unbound) and point relay.resolver at it, or set relay.trust_resolver if the path to it is safe", addr)
		}
		if o.Policy == relay.Dane && log != nil {
			log.Warn("DANE is off: the resolver is not on this host, so its DNSSEC verdicts (the AD bit) cannot be trusted; MTA-STS and may apply. Point relay.resolver at a local validating resolver (unbound) to use DANE.", "resolver", addr)
		}
	}
	if orTrue(rc.MTASTS) {
		o.MTASTS = &mtasts.Cache{Fetcher: &mtasts.Fetcher{Resolver: res, RootCAs: o.RootCAs, DialContext: dialVia(res)},
			Path: filepath.Join(c.DataDir, "mta-sts.json")}
	}
	if rc.Smarthost != "" {
		sh := &relay.Smarthost{Addr: rc.Smarthost}
		sh.Policy, _ = relay.ParsePolicy(rc.smarthostTLS())
		if rc.SmarthostUser != "" {
			pw, err := rc.smarthostPassword()
			if err != nil {
				return o, err
			}
			sh.Auth = &sasl.Credentials{Username: rc.SmarthostUser, Password: pw}
		}
		o.Smarthost = sh
	}
	return o, nil
}

// trustedNetworks parses relay.trusted_networks (checked with the
// configuration).
func trustedNetworks(rc *RelayConfig) []netip.Prefix {
	var out []netip.Prefix
	for _, n := range rc.TrustedNetworks {
		if p, err := netip.ParsePrefix(n); err == nil {
			out = append(out, p.Masked())
		}
	}
	return out
}

// relayObserver feeds the relay's outcomes into the metrics.
type relayObserver struct{ m *metrics.Metrics }

// Delivery implements relay.Observer.
func (o relayObserver) Delivery(d relay.DeliveryInfo) { o.m.Outbound(d.Result, d.TLS, d.Latency) }

// localStore is the Maildir store as the relay's local delivery.
type localStore struct {
	st      *store.Store
	users   *userdb.DB
	domains []string
}

// IsLocal implements relay.Local.
func (l localStore) IsLocal(domain string) bool {
	for _, d := range l.domains {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}

// Exists implements relay.Local.
func (l localStore) Exists(box string) bool { return l.users.Exists(box) }

// Deliver implements relay.Local.
func (l localStore) Deliver(d store.Delivery, msg io.Reader) error { return l.st.DeliverMail(d, msg) }

// TLSReportDir is where the daily TLS reports of a data directory are.
func TLSReportDir(dataDir string) string { return filepath.Join(dataDir, "tlsrpt") }

// ControlSocket is where a running server answers queue commands.
func ControlSocket(dataDir string) string { return filepath.Join(QueueDir(dataDir), "control.sock") }

// dialVia dials host:port with the host looked up by the relay's own
// resolver, so that the MTA-STS policy host is found where the MX hosts
// are, not through another resolver the system may have.
func dialVia(res *resolve.Resolver) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		addrs, _, err := res.LookupAddrs(ctx, host)
		if err != nil {
			return nil, err
		}
		var d net.Dialer
		var last error
		for _, a := range addrs {
			c, err := d.DialContext(ctx, network, net.JoinHostPort(a.String(), port))
			if err == nil {
				return c, nil
			}
			last = err
		}
		return nil, last
	}
}
