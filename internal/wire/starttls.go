package wire

import (
	"context"
	"crypto/tls"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/tlsconf"
)

// StartTLS upgrades the session in place: command sends the protocol's
// STARTTLS (RFC 3207) or STLS (RFC 2595 section 4) and returns nil on the
// server's go-ahead, then the handshake runs. Octets the server sent after
// its go-ahead and before the handshake are a response-injection attempt
// (a man in the middle hoping they will be read as if they came under
// TLS): the connection is dropped instead of discarding them silently. op
// names the command in errors and unit the octets in the injection error,
// as each protocol has always worded it.
func (s *Session) StartTLS(ctx context.Context, op, unit string, command func() error) error {
	if s.TLS != nil {
		return &mailsec.Error{Code: mailsec.TLSConnected, Op: op, Detail: "the session is already under TLS"}
	}
	// Octets already waiting before the command is sent answer nothing the
	// client asked: an injected go-ahead there would be read as the answer
	// to STARTTLS (RFC 3207 section 4 and RFC 2595 section 4 allow no
	// unsolicited data; the "NO STARTTLS" study, USENIX Security 2021,
	// shows clients desynchronised this way).
	if n := s.R.Buffered(); n > 0 {
		return s.Fail(ctx, mailsec.Errorf(mailsec.Protocol, op, nil,
			"the server sent %d unsolicited %s before %s (response injection); connection dropped", n, unit, op))
	}
	if err := command(); err != nil {
		return err
	}
	if n := s.R.Buffered(); n > 0 {
		return s.Fail(ctx, mailsec.Errorf(mailsec.Protocol, op, nil,
			"the server sent %d %s after its %s reply, before the TLS handshake (response injection); connection dropped", n, unit, op))
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
