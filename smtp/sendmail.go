package smtp

import (
	"context"
	"io"
)

// SendMail is the one call an application sending notification mail needs
// (docs/requirements.md, notification mail): connect to addr with the secure defaults (implicit TLS on 465,
// mandatory STARTTLS elsewhere, verified certificates), authenticate when
// opts carries credentials, send one message and QUIT.
func SendMail(ctx context.Context, addr string, opts *Options, from string, to []string, msg io.Reader) (*Result, error) {
	c, err := Dial(ctx, addr, opts)
	if err != nil {
		return nil, err
	}
	res, err := c.Send(ctx, from, to, msg, nil)
	if err != nil {
		c.Close()
		return res, err
	}
	// The message is accepted once the server said 250 to the end of data;
	// a failed QUIT does not undo that, so it is not reported as failure.
	_ = c.Quit(ctx)
	return res, nil
}
