package smtp

import (
	"context"
	"encoding/base64"
	"strings"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/sasl"
)

// Authenticate implements security.Conn: one AUTH exchange (RFC 4954) with
// the mechanism. Client responses never reach the transcript or the log.
func (c *Client) Authenticate(ctx context.Context, m sasl.Client) error {
	op := "AUTH " + m.Name()
	ir, err := m.Start(c.State())
	if err != nil {
		return err
	}
	line := "AUTH " + m.Name()
	if ir != nil {
		// RFC 4954 section 4: an empty initial response is sent as "=".
		enc := "="
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		line += " " + enc
	}
	rep, err := c.exchange(ctx, op, line, "AUTH "+m.Name()+redactedMark(ir != nil))
	for err == nil && rep.Code == 334 {
		chal, derr := base64.StdEncoding.DecodeString(strings.Join(rep.Lines, ""))
		if derr != nil {
			// RFC 4954 section 4: "*" cancels the exchange.
			c.exchange(ctx, op, "*", "*")
			return mailsec.Errorf(mailsec.Protocol, op, derr, "the server's challenge is not base64")
		}
		resp, merr := m.Next(chal)
		if merr != nil {
			c.exchange(ctx, op, "*", "*")
			return merr
		}
		rep, err = c.exchange(ctx, op, base64.StdEncoding.EncodeToString(resp), strings.TrimSpace(redactedMark(true)))
	}
	if err != nil {
		return err
	}
	if rep.Code != 235 {
		return replyErr(rep, op, mailsec.SMTPServer)
	}
	if v, ok := m.(sasl.Verifier); ok {
		if err := v.Verify(); err != nil {
			return c.wire.Fail(ctx, err)
		}
	}
	return nil
}

func redactedMark(present bool) string {
	if present {
		return " [credentials redacted]"
	}
	return ""
}
