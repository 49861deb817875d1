package pop3

import (
	"context"
	"io"
	"strconv"
)

// pipelineWindow is how many commands the client sends ahead of the replies
// when the server offers PIPELINING (RFC 2449 section 6.6). The commands are
// a few octets each, so the window fits in any socket buffer and the client
// cannot deadlock writing while the server waits for its replies to be read.
const pipelineWindow = 32

// Pipelining reports whether the server announced PIPELINING.
func (c *Client) Pipelining() bool {
	ok, _ := c.Capability("PIPELINING")
	return ok
}

// RetrEach downloads the messages nums in order, handing each to fn as it
// arrives; with PIPELINING the RETR commands are sent ahead of the replies.
// A message the server refuses (-ERR) reaches fn as a nil body and a
// POPServer error; fn returning nil goes on with the next message. When fn
// returns an error the session is closed (replies still in flight cannot be
// skipped safely) and that error is returned: nothing is deleted, since
// deletions need a clean QUIT. A body fn leaves unread is drained.
func (c *Client) RetrEach(ctx context.Context, nums []int, fn func(num int, body io.Reader, err error) error) error {
	return c.pipeline(ctx, "RETR", nums, multiLine, func(num int, rep *statusLine) error {
		if !rep.OK {
			return fn(num, nil, rep.err("RETR"))
		}
		b := c.openBody(ctx, "RETR")
		if err := fn(num, b, nil); err != nil {
			b.finish()
			return err
		}
		return b.Close()
	})
}

// DeleEach marks the messages nums deleted (DELE), pipelined when the server
// allows it. It returns the first refusal after reading every reply, so
// the session stays usable; the deletions happen only on QUIT.
func (c *Client) DeleEach(ctx context.Context, nums []int) error {
	var first error
	err := c.pipeline(ctx, "DELE", nums, single, func(_ int, rep *statusLine) error {
		if !rep.OK && first == nil {
			first = rep.err("DELE")
		}
		return nil
	})
	if err != nil {
		return err
	}
	return first
}

// pipeline sends "op num" for each num, up to a window ahead of the replies
// (one at a time without PIPELINING), and hands each status line to each;
// kind is what each response is made of.
// An error from each or from the connection ends the session.
func (c *Client) pipeline(ctx context.Context, op string, nums []int, kind response, each func(num int, rep *statusLine) error) error {
	if err := c.usable(); err != nil {
		return err
	}
	window := 1
	if c.Pipelining() {
		window = pipelineWindow
	}
	sent := 0
	for i, num := range nums {
		if sent < len(nums) && sent-i <= window/2 {
			if err := c.sendAhead(ctx, op, nums, &sent, i+window); err != nil {
				return err
			}
		}
		done := c.wire.Guard(ctx, 1)
		rep, err := c.status(op, kind)
		done()
		if err != nil {
			return c.wire.Fail(ctx, err)
		}
		if err := each(num, rep); err != nil {
			if c.wire.Broken == nil {
				c.wire.Fail(ctx, err)
			}
			return err
		}
		if c.wire.Broken != nil {
			return c.wire.Broken
		}
	}
	return nil
}

// sendAhead writes the commands for nums[*sent:upto] and flushes them.
func (c *Client) sendAhead(ctx context.Context, op string, nums []int, sent *int, upto int) error {
	done := c.wire.Guard(ctx, 1)
	defer done()
	for ; *sent < len(nums) && *sent < upto; *sent++ {
		if err := c.wire.Send(op, op+" "+strconv.Itoa(nums[*sent]), op+" "+strconv.Itoa(nums[*sent])); err != nil {
			return c.wire.Fail(ctx, err)
		}
	}
	if err := c.wire.Flush(op); err != nil {
		return c.wire.Fail(ctx, err)
	}
	return nil
}
