// Package relay delivers the outbound mail of a queue.Queue: it claims due
// messages, finds each recipient's destination (a configured route, the
// smarthost, or the domain's MX hosts, RFC 5321 section 5.1), connects
// with the destination's TLS policy and hands the message over with the
// smtp client, then records per-recipient outcomes, retries with back-off,
// and sends delay notices and bounces (RFC 3464) to the sender.
//
// One file per concern: relay.go (the claim loop), process.go (one
// message's attempt and its record), route.go (destinations), plan.go
// (each host's TLS policy: DANE, MTA-STS, REQUIRETLS), deliver.go (one
// destination's hosts and sessions), conns.go (connection reuse and
// per-destination concurrency), local.go (local recipients), notify.go
// (bounces and delay notices), policy.go (TLS levels), schedule.go
// (back-off), observer.go (events for metrics), explain.go (the plan as
// "mailsec probe --mx" shows it).
package relay

import (
	"context"
	"crypto/x509"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/dial"
	"github.com/mailsec/mailsec/mtasts"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/tlsrpt"
)

// The back-off bounds a zero Options.BackoffMin and BackoffMax mean, named
// so that a configuration can be checked against them.
const (
	DefaultBackoffMin = 5 * time.Minute
	DefaultBackoffMax = time.Hour
)

// Options configure a Relay. Zero values mean the documented defaults;
// Resolver and Hostname are required, and Queue to Start (a relay without
// one can still Explain).
type Options struct {
	// Hostname is the name sent in EHLO and written as Reporting-MTA in
	// notices; it should be the host's public name.
	Hostname string
	// Queue is where the messages wait.
	Queue queue.Queue
	// Resolver finds MX hosts and addresses.
	Resolver Resolver
	// Port is the destination port of MX delivery; 0 means 25. Other
	// ports exist for tests and for networks that remap 25.
	Port int
	// Policy is the TLS policy of destinations without a route of their
	// own; the zero value is Dane.
	Policy Policy
	// DNSSEC trusts the AD bit of the Resolver's answers, which is what
	// DANE rests on (RFC 7672 section 2.1): set it only for a validating
	// resolver on this host (or one reached over a path nobody can
	// tamper with). Without it no TLSA record is ever used.
	DNSSEC bool
	// MTASTS fetches and caches the MTA-STS policies of recipient
	// domains (RFC 8461); nil means none are used.
	MTASTS *mtasts.Cache
	// TLSReports is told the outcome of each TLS policy applied (RFC
	// 8460); nil means no reports are kept.
	TLSReports tlsrpt.Recorder
	// Routes send the mail of some domains elsewhere, with their own
	// policy (Postfix's transport and TLS policy maps).
	Routes []Route
	// Smarthost, when set, takes all mail without a route (Postfix's
	// relayhost).
	Smarthost *Smarthost
	// RootCAs verify certificates under Verify; nil means the system roots.
	RootCAs *x509.CertPool
	// Local delivers recipients of the local domains (bounces to local
	// senders, the local part of a relayed message); nil means none are
	// local.
	Local Local
	// Lifetime is how long a message may stay queued before its pending
	// recipients fail; 0 means 5 days (RFC 5321 section 4.5.4.1 asks for
	// at least 4-5 days).
	Lifetime time.Duration
	// DelayNotice is the age of a message at which its sender is told it
	// is delayed; 0 means 4 hours, negative means never.
	DelayNotice time.Duration
	// BackoffMin and BackoffMax bound the wait between attempts: the n-th
	// retry waits BackoffMin*2^(n-1), at most BackoffMax, less a random
	// part of up to half of it so that messages deferred together do not
	// come back together. 0 means DefaultBackoffMin and DefaultBackoffMax.
	BackoffMin, BackoffMax time.Duration
	// ConnectTimeout bounds the TCP connect to one address; 0 means 30 s.
	ConnectTimeout time.Duration
	// CommandTimeout bounds each command's round trip; 0 means 5 minutes
	// (RFC 5321 section 4.5.3.2).
	CommandTimeout time.Duration
	// Concurrency is the number of connections at once to one destination
	// (domain or next hop); 0 means 20.
	Concurrency int
	// Limiter counts those connections; nil means in this process. A
	// shared queue passes one that counts across nodes.
	Limiter Limiter
	// Workers is the number of messages in delivery at once; 0 means 64.
	Workers int
	// ConnectionReuse is how long an idle session to a destination is
	// kept for the next message; 0 means 2 seconds, negative means no
	// reuse.
	ConnectionReuse time.Duration
	// LeaseTime is how long a claimed message stays with this relay
	// before another deliverer may take it; 0 means 15 minutes.
	LeaseTime time.Duration
	// PollInterval is how often the queue is asked for due messages when
	// nothing woke the relay; 0 means 1 second.
	PollInterval time.Duration
	// Dialer makes the TCP connections; nil dials directly.
	Dialer dial.Dialer
	// Logger receives one record per delivery attempt and per notice.
	Logger *slog.Logger
	// Observer is told every recipient's outcome, for metrics.
	Observer Observer
}

// Route sends a domain's mail to a fixed next hop.
type Route struct {
	// Domain is the recipient domain, case-insensitive; "*" matches every
	// domain without a route of its own.
	Domain string
	// NextHop is "host" or "host:port" (port default Options.Port) to
	// connect to instead of the MX hosts; "" keeps MX delivery and only
	// sets the policy.
	NextHop string
	// Policy is the TLS policy for this destination.
	Policy Policy
}

// Smarthost is the next hop for all mail without a route: a provider's
// submission server, say. Its TLS policy defaults to Verify, since the
// credentials must not go to anyone else.
type Smarthost struct {
	// Addr is host:port; port 465 means implicit TLS.
	Addr string
	// Auth are the credentials, nil for none.
	Auth *sasl.Credentials
	// Policy must be Encrypt or Verify when Auth is set.
	Policy Policy
}

// Relay delivers a queue's messages. Start it, then Shutdown.
type Relay struct {
	o     Options
	log   *slog.Logger
	conns *conns

	cancel   context.CancelFunc // ends deliveries in progress
	stopLoop chan struct{}
	loopDone chan struct{}
	inflight sync.WaitGroup
}

// New checks the options and returns a relay that has not started.
func New(o Options) (*Relay, error) {
	if o.Resolver == nil {
		return nil, mailsec.Errorf(mailsec.Config, "relay", nil, "a resolver is required")
	}
	if o.Hostname == "" {
		return nil, mailsec.Errorf(mailsec.Config, "relay", nil, "a host name is required")
	}
	if sh := o.Smarthost; sh != nil && sh.Auth != nil && sh.Policy != Encrypt && sh.Policy != Verify {
		return nil, mailsec.Errorf(mailsec.Config, "relay", nil, "the smarthost's credentials need TLS: policy encrypt or verify, not %s", sh.Policy)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if o.Port == 0 {
		o.Port = 25
	}
	def(&o.Lifetime, 5*24*time.Hour)
	def(&o.DelayNotice, 4*time.Hour)
	def(&o.BackoffMin, DefaultBackoffMin)
	def(&o.BackoffMax, DefaultBackoffMax)
	def(&o.ConnectTimeout, 30*time.Second)
	def(&o.CommandTimeout, 5*time.Minute)
	def(&o.ConnectionReuse, 2*time.Second)
	def(&o.LeaseTime, 15*time.Minute)
	def(&o.PollInterval, time.Second)
	if o.Concurrency <= 0 {
		o.Concurrency = 20
	}
	if o.Workers <= 0 {
		o.Workers = 64
	}
	if o.Limiter == nil {
		o.Limiter = newLocalLimiter()
	}
	if o.Observer == nil {
		o.Observer = nopObserver{}
	}
	r := &Relay{o: o, log: mailsec.Logger(o.Logger, mailsec.FacilityProtocol).With("component", "relay")}
	r.conns = newConns(o.ConnectionReuse)
	return r, nil
}

// Start begins claiming and delivering in the background; Options.Queue
// must be set.
func (r *Relay) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.stopLoop = make(chan struct{})
	r.loopDone = make(chan struct{})
	go r.loop(ctx)
}

// Shutdown stops claiming, waits for the deliveries in progress until ctx
// ends, then aborts the rest: their outcome is not recorded, so they are
// delivered again later (at most once more), never lost.
func (r *Relay) Shutdown(ctx context.Context) error {
	if r.stopLoop == nil {
		return nil
	}
	close(r.stopLoop)
	<-r.loopDone
	done := make(chan struct{})
	go func() { r.inflight.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		r.cancel()
		<-done
	}
	r.cancel()
	r.conns.closeAll()
	return err
}

// loop claims due messages whenever a worker is free and something may be
// due: on a wake-up from the queue, a finished delivery, or the poll tick.
func (r *Relay) loop(ctx context.Context) {
	defer close(r.loopDone)
	free := make(chan struct{}, r.o.Workers)
	for range r.o.Workers {
		free <- struct{}{}
	}
	finished := make(chan struct{}, 1)
	tick := time.NewTicker(r.o.PollInterval)
	defer tick.Stop()
	for {
		n := len(free)
		claimed := 0
		if n > 0 {
			entries, err := r.o.Queue.Claim(ctx, n, r.o.LeaseTime)
			if err != nil && !errors.Is(err, context.Canceled) {
				r.log.Error("claiming due messages failed", "err", err)
			}
			claimed = len(entries)
			for _, e := range entries {
				<-free
				r.inflight.Add(1)
				go func() {
					defer r.inflight.Done()
					r.process(ctx, e)
					free <- struct{}{}
					select {
					case finished <- struct{}{}:
					default:
					}
				}()
			}
		}
		if claimed > 0 && claimed == n {
			// Every free worker got a message; more may be due.
			select {
			case <-r.stopLoop:
				return
			case <-finished:
			}
			continue
		}
		select {
		case <-r.stopLoop:
			return
		case <-r.o.Queue.Wake():
		case <-finished:
		case <-tick.C:
		}
	}
}
