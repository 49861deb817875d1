package server

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"sort"
	"sync"

	"github.com/mailsec/mailsec/metrics"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/store"
	"github.com/mailsec/mailsec/userdb"
)

// Env is what a listener kind builds its service from.
type Env struct {
	// Config is the whole configuration.
	Config *Config
	// TLS is the server TLS configuration (reloading certificate).
	TLS *tls.Config
	// Users is the user database.
	Users *userdb.DB
	// Store is the mail store (<data>/mail).
	Store *store.Store
	// Logger is the server's logger.
	Logger *slog.Logger
	// Metrics collects the Prometheus metrics; nil when they are off.
	Metrics *metrics.Metrics
	// Queue takes the mail for other domains; nil when relaying is off.
	Queue queue.Queue

	mu     sync.Mutex
	shared map[string]any
}

// Shared returns the value stored under key, creating it with make on
// first use, so that the listeners of one protocol can share one server
// (and its session limits).
func (e *Env) Shared(key string, make func() any) any {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.shared == nil {
		e.shared = map[string]any{}
	}
	v, ok := e.shared[key]
	if !ok {
		v = make()
		e.shared[key] = v
	}
	return v
}

// Service serves one listener.
type Service interface {
	// Serve accepts connections on ln until Shutdown, then returns nil.
	Serve(ln net.Listener) error
	// Shutdown stops accepting and ends sessions gracefully within ctx.
	// It may be called once per listener of a shared server.
	Shutdown(ctx context.Context) error
	// ImplicitTLS reports whether the listener starts TLS before the
	// protocol (SMTPS, POP3S), for the metrics' count of handshakes.
	ImplicitTLS() bool
}

// KindFunc makes the service for a listener of its kind.
type KindFunc func(env *Env, l Listener) (Service, error)

var (
	kindsMu sync.Mutex
	kinds   = map[string]KindFunc{}
)

// RegisterKind makes a listener kind available to configurations; the
// protocol packages' glue calls it from init (kinds_smtp.go registers mx,
// submission and smtps, kinds_pop3.go pop3 and pop3s).
func RegisterKind(name string, f KindFunc) {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	kinds[name] = f
}

// Kinds lists the registered kinds.
func Kinds() []string {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	var names []string
	for n := range kinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func lookupKind(name string) KindFunc {
	kindsMu.Lock()
	defer kindsMu.Unlock()
	return kinds[name]
}
