package pop3

import "context"

// StartTLS implements security.Conn: STLS (RFC 2595 section 4), then the
// handshake. Octets the server sent after its +OK and before the handshake
// are a response-injection attempt, and the connection is dropped (see
// wire.Session.StartTLS). The plain-text reader is replaced, so nothing
// read before TLS survives into the session, and the security context asks
// CAPA again.
func (c *Client) StartTLS(ctx context.Context) error {
	return c.wire.StartTLS(ctx, "STLS", func() error {
		return c.simple(ctx, "STLS", "STLS")
	})
}
