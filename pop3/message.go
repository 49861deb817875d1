package pop3

import (
	"context"
	"io"
	"strconv"
)

// Body is a message being downloaded: an io.Reader over the dot-unstuffed
// content of a RETR or TOP response. Each Read is bounded by the command
// timeout and by the context the download started with.
type Body struct {
	c    *Client
	op   string // RETR or TOP, for errors
	ctx  context.Context
	d    *dotReader
	stop func()
	done bool
}

func (c *Client) openBody(ctx context.Context, op string) *Body {
	b := &Body{c: c, op: op, ctx: ctx, d: newDotReader(c.wire.R)}
	b.stop = c.wire.Interrupt(ctx)
	c.body = b
	return b
}

// Read implements io.Reader. io.EOF means the whole message arrived; any
// other error means it did not, and the session is then unusable.
func (b *Body) Read(p []byte) (int, error) {
	if b.done {
		return b.d.Read(p)
	}
	b.c.wire.Conn.SetReadDeadline(b.c.wire.Deadline(b.ctx, 1))
	n, err := b.d.Read(p)
	switch {
	case err == io.EOF:
		b.finish()
		b.c.wire.Trace(false, "["+strconv.FormatInt(b.d.n, 10)+" octets of message]")
		b.c.wire.Trace(false, ".")
		if aerr := b.c.wire.Answered(b.op); aerr != nil {
			b.d.err = b.c.wire.Fail(b.ctx, aerr)
			err = b.d.err
		}
	case err != nil:
		b.finish()
		b.d.err = b.c.wire.Fail(b.ctx, err)
		err = b.d.err
	}
	return n, err
}

func (b *Body) finish() {
	b.done = true
	b.stop()
	b.c.body = nil
}

// Size returns the octets delivered so far.
func (b *Body) Size() int64 { return b.d.n }

// Close reads and discards the rest of the message so the session can go
// on; it returns the error that ended the body early, if any.
func (b *Body) Close() error {
	if !b.done {
		if _, err := io.Copy(io.Discard, b); err != nil {
			return err
		}
	}
	if b.d.err == io.EOF {
		return nil
	}
	return b.d.err
}
