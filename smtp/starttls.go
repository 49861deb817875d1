package smtp

import (
	"bufio"
	"context"
	"crypto/tls"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/tlsconf"
)

// StartTLS implements security.Conn: STARTTLS (RFC 3207), then the
// handshake. Bytes the server sent after its 220 and before the handshake
// are a response-injection attempt (the attacker hopes they will be read as
// if they came under TLS); the client refuses the connection instead of
// discarding them silently. Anything else read in plain text is dropped with
// the old reader, and the EHLO answer is discarded by the security context.
func (c *Client) StartTLS(ctx context.Context) error {
	if c.tls != nil {
		return &mailsec.Error{Code: mailsec.TLSConnected, Op: "STARTTLS", Detail: "the session is already under TLS"}
	}
	rep, err := c.cmd(ctx, "STARTTLS", "STARTTLS")
	if err != nil {
		return err
	}
	if rep.Code != 220 {
		return rep.err("STARTTLS", mailsec.SMTPServer)
	}
	if n := c.r.Buffered(); n > 0 {
		return c.fail(ctx, mailsec.Errorf(mailsec.Protocol, "STARTTLS", nil,
			"the server sent %d bytes after its STARTTLS reply, before the TLS handshake (response injection); connection dropped", n))
	}
	return c.handshake(ctx)
}

// handshake runs the TLS handshake and replaces the reader and writer so
// that nothing read in plain text survives into the TLS session.
func (c *Client) handshake(ctx context.Context) error {
	done := c.guard(ctx, 1)
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
	c.conn = tc
	c.tls = &st
	c.r = bufio.NewReaderSize(tc, 4096)
	c.w = bufio.NewWriterSize(tc, 32*1024)
	f := tlsconf.FactsOf(&st)
	c.tlslog.Info("TLS established", "version", f.Version, "cipher_suite", f.CipherSuite, "group", f.Group)
	return nil
}
