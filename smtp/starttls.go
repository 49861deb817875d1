package smtp

import "context"

// StartTLS implements security.Conn: STARTTLS (RFC 3207), then the
// handshake. Bytes the server sent after its 220 and before the handshake
// are a response-injection attempt, and the connection is refused (see
// wire.Session.StartTLS). Anything else read in plain text is dropped with
// the old reader, and the EHLO answer is discarded by the security context.
func (c *Client) StartTLS(ctx context.Context) error {
	return c.wire.StartTLS(ctx, "STARTTLS", func() error {
		return c.simple(ctx, "STARTTLS", "STARTTLS", 220)
	})
}
