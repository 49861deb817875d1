package server

import (
	"context"
	"crypto/x509"
	"io"
	"log/slog"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailsec/mailsec/metrics"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/queue/embedded"
	"github.com/mailsec/mailsec/relay"
	"github.com/mailsec/mailsec/resolve"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/smtpd"
	"github.com/mailsec/mailsec/store"
	"github.com/mailsec/mailsec/tlsconf"
	"github.com/mailsec/mailsec/userdb"
)

// QueueDir is where the embedded queue of a data directory lives.
func QueueDir(dataDir string) string { return filepath.Join(dataDir, "queue") }

// OpenQueue opens the queue a configuration names, for mailsec serve and
// for the queue commands when no server is running.
func OpenQueue(c *Config, log *slog.Logger) (queue.Queue, error) {
	return embedded.Open(QueueDir(c.DataDir), &embedded.Options{Logger: log})
}

// startRelay opens the queue and starts delivering from it.
func (s *Server) startRelay(c *Config, log *slog.Logger) error {
	q, err := OpenQueue(c, log)
	if err != nil {
		return err
	}
	s.queue = q
	rc := &c.Relay
	o := relay.Options{
		Hostname:        c.Hostname,
		Queue:           q,
		Resolver:        &resolve.Resolver{Server: rc.Resolver},
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
		Local:           localStore{st: s.env.Store, users: s.env.Users, domains: c.Domains},
		Logger:          log,
	}
	o.Policy, _ = relay.ParsePolicy(rc.TLS) // checked with the configuration
	if rc.CAFile != "" {
		var pool *x509.CertPool
		if pool, err = tlsconf.LoadCAFile(rc.CAFile); err != nil {
			q.Close()
			return configErr("relay.ca_file", err, "cannot load %s", rc.CAFile)
		}
		o.RootCAs = pool
	}
	for _, rt := range rc.Routes {
		p, _ := relay.ParsePolicy(rt.TLS)
		if rt.TLS == "" {
			p = o.Policy
		}
		o.Routes = append(o.Routes, relay.Route{Domain: rt.Domain, NextHop: rt.NextHop, Policy: p})
	}
	if rc.Smarthost != "" {
		sh := &relay.Smarthost{Addr: rc.Smarthost}
		sh.Policy, _ = relay.ParsePolicy(rc.smarthostTLS())
		if rc.SmarthostUser != "" {
			pw, err := rc.smarthostPassword()
			if err != nil {
				q.Close()
				return err
			}
			sh.Auth = &sasl.Credentials{Username: rc.SmarthostUser, Password: pw}
		}
		o.Smarthost = sh
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
func (l localStore) Deliver(boxes []string, msg io.Reader) error { return l.st.Deliver(boxes, msg) }

// queueBackend stores what smtpd accepts: mail for local mailboxes only
// straight into the Maildirs, anything with a relayed recipient into the
// queue whole, local recipients included, so that a message is
// acknowledged after one durable write and is never half accepted.
type queueBackend struct {
	local smtpd.Maildir
	q     queue.Queue
}

// Deliver implements smtpd.Backend.
func (b queueBackend) Deliver(env *smtpd.Envelope, msg io.Reader) error {
	if !env.Relayed() {
		return b.local.Deliver(env, msg)
	}
	qe := &queue.Envelope{From: env.From, AuthUser: env.AuthUser, UTF8: env.UTF8, Body: env.Body,
		Ret: env.Ret, EnvID: env.EnvID}
	for _, r := range env.Rcpts {
		qe.Recipients = append(qe.Recipients, queue.Recipient{Addr: r.Addr, Notify: r.Notify, ORcpt: r.ORcpt})
	}
	_, err := b.q.Enqueue(context.Background(), qe, msg)
	return err
}

// ControlSocket is where a running server answers queue commands.
func ControlSocket(dataDir string) string { return filepath.Join(QueueDir(dataDir), "control.sock") }
