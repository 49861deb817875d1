package pop3

import (
	"context"
	"crypto/tls"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/tlsconf"
)

// StartTLS implements security.Conn: STLS (RFC 2595 section 4), then the
// handshake. Octets the server sent after its +OK and before the handshake
// are a response-injection attempt (a man in the middle hoping they will be
// read as if they came under TLS): the client drops the connection instead
// of discarding them silently. The plain-text reader is replaced, so nothing
// read before TLS survives into the session, and the security context asks
// CAPA again.
func (c *Client) StartTLS(ctx context.Context) error {
	if c.tls != nil {
		return &mailsec.Error{Code: mailsec.TLSConnected, Op: "STLS", Detail: "the session is already under TLS"}
	}
	rep, err := c.cmd(ctx, "STLS", "STLS")
	if err != nil {
		return err
	}
	if !rep.OK {
		return rep.err("STLS")
	}
	if n := c.r.Buffered(); n > 0 {
		return c.fail(ctx, mailsec.Errorf(mailsec.Protocol, "STLS", nil,
			"the server sent %d octets after its STLS reply, before the TLS handshake (response injection); connection dropped", n))
	}
	return c.handshake(ctx)
}

// handshake runs the TLS handshake on the raw connection and rebuilds the
// reader and writer on top of it.
func (c *Client) handshake(ctx context.Context) error {
	done := c.guard(ctx)
	defer done()
	// Built per handshake so that revocation fetches share this
	// handshake's deadline, whenever the caller runs it.
	cfg, err := c.opts.TLS.ConfigContext(ctx, c.host)
	if err != nil {
		return c.fail(ctx, err)
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return c.fail(ctx, tlsconf.HandshakeError(err))
	}
	st := tc.ConnectionState()
	c.setIO(tc)
	c.tls = &st
	f := tlsconf.FactsOf(&st)
	c.tlslog.Info("TLS established", "version", f.Version, "cipher_suite", f.CipherSuite, "group", f.Group)
	return nil
}
