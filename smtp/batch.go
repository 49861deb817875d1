package smtp

import (
	"context"
	"io"

	"github.com/mailsec/mailsec"
)

// Message is one mail transaction of a batch (see SendBatch).
type Message struct {
	From    string
	To      []string
	Body    io.Reader
	Options *MailOptions
}

// BatchResult is what became of one message of a batch: the Result as Send
// returns it, and Err nil when the server took the message.
type BatchResult struct {
	*Result
	Err error
}

// SendBatch sends msgs in order on this session, as that many calls of Send
// would, and returns one result per message. A refused message does not
// stop the others; once the session breaks, the messages not yet sent
// carry its error.
//
// With PIPELINING and DATA (the server does not offer CHUNKING), each
// message's content and end of data go in one write with the next
// message's MAIL, RCPT and DATA: RFC 2920 section 3.1 lets message content
// open a command group and DATA close it. A message then costs one round
// trip instead of Send's two. With CHUNKING, Send costs one already and is
// used as it is.
func (c *Client) SendBatch(ctx context.Context, msgs []Message) []BatchResult {
	out := make([]BatchResult, len(msgs))
	_, chunking := c.ext["CHUNKING"]
	_, pipelining := c.ext["PIPELINING"]
	if chunking || !pipelining {
		for i, m := range msgs {
			out[i].Result, out[i].Err = c.Send(ctx, m.From, m.To, m.Body, m.Options)
		}
		return out
	}
	b := &dataBatch{c: c, msgs: msgs, out: out}
	b.run(ctx)
	return out
}

// dataBatch pipelines DATA transactions: while one message's final reply
// is on its way, the next envelope already is too.
type dataBatch struct {
	c    *Client
	msgs []Message
	out  []BatchResult
	opts []MailOptions
	cmds [][]string // MAIL, RCPT..., DATA of each message; nil if refused before sending
}

func (b *dataBatch) run(ctx context.Context) {
	c := b.c
	b.opts = make([]MailOptions, len(b.msgs))
	b.cmds = make([][]string, len(b.msgs))
	for i, m := range b.msgs {
		b.out[i].Result = &Result{Pipelining: true}
		o, cmds, err := c.transaction(m.From, m.To, m.Options)
		b.opts[i] = o
		if err != nil {
			b.out[i].Err = err
			continue
		}
		b.cmds[i] = append(cmds, "DATA")
	}
	cur := b.sendNext(ctx, b.next(-1))
	for cur >= 0 && c.wire.Broken == nil {
		cur = b.step(ctx, cur)
	}
	for i := range b.out {
		if b.cmds[i] != nil && b.out[i].Err == nil && b.out[i].Reply == nil {
			b.out[i].Err = c.wire.Broken
		}
	}
}

// next is the first message after i that can be sent, or -1.
func (b *dataBatch) next(i int) int {
	for j := i + 1; j < len(b.cmds); j++ {
		if b.cmds[j] != nil {
			return j
		}
	}
	return -1
}

// step reads message cur's envelope replies (already sent), sends its
// content and end of data together with the next envelope, and reads its
// final reply. It returns the message whose envelope is now in flight.
func (b *dataBatch) step(ctx context.Context, cur int) int {
	c, res, o := b.c, b.out[cur].Result, &b.opts[cur]
	cmds, to := b.cmds[cur], b.msgs[cur].To
	done := c.wire.Guard(ctx, 2)
	defer done()
	replies, err := c.readReplies(ctx, cmds)
	if err != nil {
		return -1
	}
	nxt := b.next(cur)
	if err := c.checkEnvelope(ctx, cmds[:len(cmds)-1], to, replies, o, res, false); err != nil {
		// checkEnvelope ended the transaction (RSET, or the connection
		// when DATA had already been accepted).
		b.out[cur].Err = err
		return b.sendNext(ctx, nxt)
	}
	if rep := replies[len(replies)-1]; rep.Code != 354 {
		b.out[cur].Err = replyErr(rep, "DATA", mailsec.SMTPServer)
		return b.sendNext(ctx, nxt)
	}
	var next []string
	if nxt >= 0 {
		next = b.cmds[nxt]
	}
	final, n, err := c.dataThen(ctx, b.msgs[cur].Body, next)
	res.Bytes = n
	if err != nil {
		b.out[cur].Err = err
		return -1
	}
	b.out[cur].Err = finish(res, final)
	return nxt
}

// sendNext sends message nxt's envelope on its own: the first one, or the
// one after a transaction that ended without content.
func (b *dataBatch) sendNext(ctx context.Context, nxt int) int {
	c := b.c
	if nxt < 0 || c.wire.Broken != nil {
		return -1
	}
	if err := c.sendLines(ctx, b.cmds[nxt]); err != nil {
		return -1
	}
	if err := c.wire.Flush("MAIL FROM"); err != nil {
		c.wire.Fail(ctx, err)
		return -1
	}
	return nxt
}
