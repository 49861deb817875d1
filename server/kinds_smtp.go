package server

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/mailsec/mailsec/smtpd"
)

func init() {
	RegisterKind("mx", smtpKind(smtpd.MX))
	RegisterKind("submission", smtpKind(smtpd.Submission))
	RegisterKind("smtps", smtpKind(smtpd.SMTPS))
}

// smtpKind returns the KindFunc of an SMTP listener kind. All SMTP
// listeners share one smtpd.Server, so MaxSessions counts them together.
func smtpKind(kind smtpd.Kind) KindFunc {
	return func(env *Env, l Listener) (Service, error) {
		srv := env.Shared("smtpd", func() any { return newSMTPServer(env) }).(*smtpd.Server)
		policy := smtpd.TLSMay
		if l.TLS == "require" || kind != smtpd.MX {
			policy = smtpd.TLSRequire
		}
		return smtpService{srv: srv, kind: kind, policy: policy}, nil
	}
}

func newSMTPServer(env *Env) *smtpd.Server {
	c := env.Config
	var obs smtpd.Observer
	if env.Metrics != nil {
		obs = smtpObserver{env.Metrics}
	}
	b := &backend{local: smtpd.Maildir{Store: env.Store}, q: env.Queue}
	if env.Queue != nil {
		b.RelayRule = smtpd.RelayRule{Submitters: true, Networks: trustedNetworks(&c.Relay)}
	}
	var be smtpd.Backend = checkedBackend{b, newSenderRule(c)}
	if c.Submission.SenderLoginMismatch == "allow" {
		be = b
	}
	return &smtpd.Server{
		Hostname:  c.Hostname,
		Domains:   c.Domains,
		TLSConfig: env.TLS,
		Users:     env.Users,
		Backend:   be,
		Logger:    env.Logger,
		Observer:  obs,
		Limits: smtpd.Limits{
			MaxMessageSize:   c.Limits.MaxMessageSize,
			MaxRecipients:    c.Limits.MaxRecipients,
			MaxSessions:      c.Limits.MaxSessions,
			MaxPerIP:         c.Limits.MaxPerIP,
			CommandTimeout:   time.Duration(c.Limits.CommandTimeout),
			DataTimeout:      time.Duration(c.Limits.DataTimeout),
			MaxAuthFailures:  c.Limits.MaxAuthFailures,
			AuthFailureDelay: time.Duration(c.Limits.AuthFailureDelay),
		},
	}
}

// smtpService is one SMTP listener of the shared server.
type smtpService struct {
	srv    *smtpd.Server
	kind   smtpd.Kind
	policy smtpd.Policy
}

// Serve implements Service; smtpd.ErrServerClosed is the normal end.
func (s smtpService) Serve(ln net.Listener) error {
	if err := s.srv.Serve(ln, s.kind, s.policy); !errors.Is(err, smtpd.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown implements Service; the shared server ignores repeated calls.
func (s smtpService) Shutdown(ctx context.Context) error { return s.srv.Shutdown(ctx) }

// ImplicitTLS implements Service.
func (s smtpService) ImplicitTLS() bool { return s.kind == smtpd.SMTPS }
