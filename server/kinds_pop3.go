package server

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/mailsec/mailsec/pop3d"
)

func init() {
	RegisterKind("pop3", pop3Kind(pop3d.STLS))
	RegisterKind("pop3s", pop3Kind(pop3d.POP3S))
}

// pop3Kind returns the KindFunc of a POP3 listener kind. Both POP3
// listeners share one pop3d.Server, so MaxSessions counts them together;
// a plain pop3 listener always requires STLS before login, so its tls
// setting can only be "require".
func pop3Kind(kind pop3d.Kind) KindFunc {
	return func(env *Env, l Listener) (Service, error) {
		srv := env.Shared("pop3d", func() any { return newPOP3Server(env) }).(*pop3d.Server)
		return pop3Service{srv: srv, kind: kind}, nil
	}
}

func newPOP3Server(env *Env) *pop3d.Server {
	c := env.Config
	var obs pop3d.Observer
	if env.Metrics != nil {
		obs = pop3Observer{env.Metrics}
	}
	return &pop3d.Server{
		Hostname:  c.Hostname,
		TLSConfig: env.TLS,
		Users:     env.Users,
		Store:     env.Store,
		Logger:    env.Logger,
		Observer:  obs,
		Limits: pop3d.Limits{
			MaxSessions:      c.Limits.MaxSessions,
			MaxPerIP:         c.Limits.MaxPerIP,
			IdleTimeout:      time.Duration(c.Limits.POP3IdleTimeout),
			MaxAuthFailures:  c.Limits.MaxAuthFailures,
			AuthFailureDelay: time.Duration(c.Limits.AuthFailureDelay),
		},
	}
}

// pop3Service is one POP3 listener of the shared server.
type pop3Service struct {
	srv  *pop3d.Server
	kind pop3d.Kind
}

// Serve implements Service; pop3d.ErrServerClosed is the normal end.
func (s pop3Service) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln, s.kind); !errors.Is(err, pop3d.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown implements Service; the shared server ignores repeated calls.
func (s pop3Service) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// ImplicitTLS implements Service.
func (s pop3Service) ImplicitTLS() bool { return s.kind == pop3d.POP3S }
