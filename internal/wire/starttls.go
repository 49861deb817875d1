package wire

import (
	"context"
	"crypto/tls"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/tlsconf"
)

// StartTLS upgrades the session in place: command sends the protocol's
// STARTTLS (RFC 3207) or STLS (RFC 2595 section 4) and returns nil on the
// server's go-ahead, then the handshake runs. Octets the server sent
// before the command or after its go-ahead, before the handshake, are a
// response-injection attempt (a man in the middle hoping they will be read
// as if they came under TLS): the lock-step rule of Send and Answered drops
// the connection instead of discarding them silently. op names the
// command in errors.
func (s *Session) StartTLS(ctx context.Context, op string, command func() error) error {
	if s.TLS != nil {
		return &mailsec.Error{Code: mailsec.TLSConnected, Op: op, Detail: "the session is already under TLS"}
	}
	if err := command(); err != nil {
		return err
	}
	// No command follows the go-ahead to peek the socket (see Answered):
	// octets behind it in a later segment are looked for here.
	if err := s.unsolicited(op); err != nil {
		return s.Fail(ctx, err)
	}
	return s.Handshake(ctx)
}

// Handshake runs the TLS handshake (at once for implicit TLS, RFC 8314, or
// after the go-ahead) and rebuilds the reader and writer on the TLS
// connection, so that nothing read in plain text survives into it.
func (s *Session) Handshake(ctx context.Context) error {
	done := s.Guard(ctx, 1)
	defer done()
	// Built per handshake so that revocation fetches share this
	// handshake's deadline, whenever the caller runs it.
	cfg, err := s.cfg.TLS.ConfigContext(ctx, s.cfg.Host)
	if err != nil {
		return s.Fail(ctx, err)
	}
	tc := tls.Client(s.Conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return s.Fail(ctx, tlsconf.HandshakeError(err))
	}
	st := tc.ConnectionState()
	s.setIO(tc)
	s.TLS = &st
	f := tlsconf.FactsOf(&st)
	s.tlslog.Info("TLS established", "version", f.Version, "cipher_suite", f.CipherSuite, "group", f.Group)
	return nil
}
