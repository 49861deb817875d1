package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/metrics"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/queue/control"
	"github.com/mailsec/mailsec/relay"
	"github.com/mailsec/mailsec/store"
	"github.com/mailsec/mailsec/tlsrpt"
	"github.com/mailsec/mailsec/userdb"
)

// Server is a running mailsec serve: every configured listener with its
// service.
type Server struct {
	env      *Env
	certs    *certReloader
	info     Info
	running  []running
	wg       sync.WaitGroup
	shutdown time.Duration
	metrics  *http.Server // nil when metrics are off
	queue    queue.Queue  // nil when relaying is off
	relay    *relay.Relay
	control  *control.Server
	// tlsReports keeps the TLS reports; nil when they are off.
	tlsReports *tlsrpt.Store
}

type running struct {
	ln  net.Listener
	svc Service
}

// Info says where everything is, for the start-up banner.
type Info struct {
	DataDir   string
	Domains   []string // the local mail domains
	UsersFile string
	MailDir   string
	CAFile    string // "" when the certificate is not from the local CA
	CertFile  string
	Listeners []ListenerInfo
	Skipped   []Listener // optional listeners whose kind is not built in
	// MetricsAddr is where Prometheus metrics are served (GET /metrics),
	// "" when they are off.
	MetricsAddr string
	// QueueDir holds the outbound queue, "" when relaying is off.
	QueueDir string
}

// ListenerInfo is one started listener.
type ListenerInfo struct {
	Listener
	// Addr is the bound address (differs from Address for port 0).
	Addr string
}

// Start prepares the data directory (Maildirs, users file, certificates)
// and starts every listener. Listening fails fast: if any address cannot
// be bound, nothing stays running.
func Start(c *Config, log *slog.Logger) (*Server, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{shutdown: time.Duration(c.Limits.ShutdownTimeout)}
	if s.shutdown <= 0 {
		s.shutdown = 30 * time.Second
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "serve", err, "cannot create data directory")
	}
	s.info = Info{DataDir: c.DataDir, Domains: c.Domains, UsersFile: filepath.Join(c.DataDir, "users"), MailDir: filepath.Join(c.DataDir, "mail")}
	certFile, keyFile := c.TLS.Cert, c.TLS.Key
	if certFile == "" {
		var err error
		if s.info.CAFile, certFile, keyFile, err = ensureLocalCA(filepath.Join(c.DataDir, "tls")); err != nil {
			return nil, err
		}
	}
	s.info.CertFile = certFile
	certs, err := newCertReloader(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	s.certs = certs
	users, err := userdb.Open(s.info.UsersFile, nil)
	if err != nil {
		return nil, err
	}
	st, err := store.New(s.info.MailDir)
	if err != nil {
		return nil, err
	}
	s.env = &Env{Config: c, TLS: certs.tlsConfig(), Users: users, Store: st, Logger: log}
	var metricsLn net.Listener
	if c.Metrics != "" {
		m := metrics.New()
		if s.metrics, metricsLn, err = startMetrics(c.Metrics, m); err != nil {
			return nil, err
		}
		s.info.MetricsAddr = metricsLn.Addr().String()
		s.env.Metrics = m
		countTLS(s.env.TLS)
	}
	if c.Relay.On() {
		if err := s.startRelay(c, log); err != nil {
			s.closeAll(metricsLn)
			return nil, err
		}
		s.env.Queue = s.queue
		// The control socket's private directory; the embedded queue
		// makes it too, a database queue does not.
		if err := os.MkdirAll(QueueDir(c.DataDir), 0o700); err != nil {
			s.closeAll(metricsLn)
			return nil, mailsec.Errorf(mailsec.Config, "serve", err, "cannot create the queue directory")
		}
		if s.control, err = control.Listen(ControlSocket(c.DataDir), s.queue, log); err != nil {
			s.closeAll(metricsLn)
			return nil, err
		}
		s.info.QueueDir = QueueDir(c.DataDir)
	}
	for _, l := range c.Listeners {
		kind := lookupKind(l.Kind)
		if kind == nil && l.Optional {
			s.info.Skipped = append(s.info.Skipped, l)
			continue
		}
		if kind == nil {
			s.closeAll(metricsLn)
			return nil, mailsec.Errorf(mailsec.Config, "serve", nil, "listener %s: unknown kind %q (known: %v)", l.Name, l.Kind, Kinds())
		}
		svc, err := kind(s.env, l)
		if err != nil {
			s.closeAll(metricsLn)
			return nil, err
		}
		ln, err := net.Listen("tcp", l.Address)
		if err != nil {
			s.closeAll(metricsLn)
			return nil, mailsec.Errorf(mailsec.Config, "serve", err, "listener %s", l.Name)
		}
		if s.env.Metrics != nil {
			ln = &metricsListener{Listener: ln, m: s.env.Metrics, name: l.Name, kind: l.Kind,
				implicit: svc.ImplicitTLS()}
		}
		s.running = append(s.running, running{ln, svc})
		s.info.Listeners = append(s.info.Listeners, ListenerInfo{Listener: l, Addr: ln.Addr().String()})
	}
	if s.metrics != nil {
		go s.metrics.Serve(metricsLn)
	}
	for _, r := range s.running {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			if err := r.svc.Serve(r.ln); err != nil {
				log.Error("listener stopped", "addr", r.ln.Addr().String(), "err", err)
			}
		}()
	}
	return s, nil
}

// closeAll closes what a failed Start opened.
func (s *Server) closeAll(metricsLn net.Listener) {
	for _, r := range s.running {
		r.ln.Close()
	}
	if metricsLn != nil {
		metricsLn.Close()
	}
	if s.control != nil {
		s.control.Close()
	}
	if s.relay != nil {
		s.relay.Shutdown(context.Background())
	}
	if s.queue != nil {
		s.queue.Close()
	}
}

// Info says where everything is.
func (s *Server) Info() Info { return s.info }

// Env returns what the services were built from (users, store, TLS).
func (s *Server) Env() *Env { return s.env }

// ReloadTLS re-reads the certificate files (SIGHUP).
func (s *Server) ReloadTLS() error { return s.certs.Reload() }

// Shutdown stops every service gracefully, waiting at most the configured
// shutdown_timeout (or until ctx ends) for messages in transfer.
func (s *Server) Shutdown(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.shutdown)
	defer cancel()
	var errs []error
	for _, r := range s.running {
		if err := r.svc.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.wg.Wait()
	// The listeners are closed, so nothing is enqueued any more; the
	// deliveries in progress get what is left of the shutdown time.
	if s.control != nil {
		s.control.Close()
	}
	if s.relay != nil {
		if err := s.relay.Shutdown(ctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			errs = append(errs, err)
		}
	}
	if s.queue != nil {
		if err := s.queue.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.tlsReports != nil {
		if err := s.tlsReports.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	if s.metrics != nil {
		if err := s.metrics.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
