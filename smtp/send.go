package smtp

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec"
)

// MailOptions are the optional parameters of one mail transaction. The zero
// value sends a plain transaction with no extension parameters.
type MailOptions struct {
	// Size is the message size in octets when known (RFC 1870): a message
	// over the server's limit is refused before anything is sent.
	Size int64
	// Body is Body8BitMIME for a message with 8-bit octets (RFC 6152);
	// such a message is refused before anything is sent when the server
	// does not offer 8BITMIME.
	Body BodyType
	// Ret and EnvID are the DSN parameters of MAIL FROM (RFC 3461
	// section 4.3 and 4.4); EnvID is printable US-ASCII, at most 100
	// characters once xtext-encoded.
	Ret   DSNReturn
	EnvID string
	// Notify is the DSN NOTIFY set for every recipient (RFC 3461
	// section 4.1). Any DSN parameter with a server that does not offer
	// DSN is refused before anything is sent, rather than dropped: the
	// caller asked for notices that would never come.
	Notify Notify
	// Recipients, when set, gives the DSN parameters of each recipient
	// (keyed by the address as passed to Send) in place of Notify: what
	// a relay passes on for each recipient it received (RFC 3461 section
	// 4.1, 4.2). A recipient without an entry gets Notify.
	Recipients map[string]RcptOptions
	// DSNIfOffered sends the DSN parameters only to a server that offers
	// DSN and leaves them out otherwise, instead of refusing: a relay
	// must deliver either way and then issues the notices the next hop
	// will not (RFC 3461 section 5.2.2). Invalid values are still refused.
	DSNIfOffered bool
	// AllowPartial delivers to the recipients the server accepted when
	// others were refused. By default one refusal aborts the transaction,
	// so that no recipient receives a message that others did not.
	AllowPartial bool
	// RequireTLS asks the server, and every server after it, to relay
	// the message only over TLS with a verified certificate, or bounce it
	// (REQUIRETLS, RFC 8689). It needs a session under TLS and a server
	// offering REQUIRETLS; without either nothing is sent.
	RequireTLS bool
}

// RecipientResult is the server's answer to one RCPT TO.
type RecipientResult struct {
	Address string         `json:"address"`
	OK      bool           `json:"ok"`
	Reply   *mailsec.Reply `json:"reply,omitempty"`
}

// Result describes a finished transaction.
type Result struct {
	Recipients []RecipientResult
	// Reply is the server's answer to the end of data; servers put their
	// queue identifier there.
	Reply *mailsec.Reply
	// Bytes is the number of message octets sent after normalisation.
	Bytes int64
	// Chunking and Pipelining report which transfer the session used.
	Chunking, Pipelining bool
}

// chunkSize is the BDAT chunk size. A large chunk keeps round trips few;
// the buffer is reused for every chunk, so memory does not grow with the
// message.
const chunkSize = 1 << 20

// Send runs one mail transaction: MAIL FROM, RCPT TO for each recipient,
// then the message with DATA or, when the server offers CHUNKING, BDAT.
// The message is streamed: its line endings are made CRLF and it is never
// held whole in memory. With PIPELINING, MAIL, the RCPTs and DATA go in one
// write (RFC 2920 section 3.1). On success the session is ready for the
// next Send.
func (c *Client) Send(ctx context.Context, from string, to []string, msg io.Reader, opts *MailOptions) (*Result, error) {
	if c.wire.Broken != nil {
		return nil, c.wire.Broken
	}
	o, cmds, err := c.transaction(from, to, opts)
	if err != nil {
		return nil, err
	}
	_, chunking := c.ext["CHUNKING"]
	_, pipelining := c.ext["PIPELINING"]
	res := &Result{Chunking: chunking, Pipelining: pipelining}
	if chunking && pipelining && (len(to) == 1 || o.AllowPartial) {
		return res, c.sendOneTrip(ctx, cmds, to, msg, &o, res)
	}
	if !chunking {
		cmds = append(cmds, "DATA")
	}
	replies, err := c.batch(ctx, cmds, pipelining)
	if err != nil {
		return res, err
	}
	if err := c.checkEnvelope(ctx, cmds, to, replies, &o, res, chunking); err != nil {
		return res, err
	}
	var final *mailsec.Reply
	if chunking {
		final, res.Bytes, err = c.bdat(ctx, msg, o.Size, nil)
	} else {
		if rep := replies[len(replies)-1]; rep.Code != 354 {
			return res, replyErr(rep, "DATA", mailsec.SMTPServer)
		}
		final, res.Bytes, err = c.data(ctx, msg)
	}
	if err != nil {
		return res, err
	}
	return res, finish(res, final)
}

// sendOneTrip sends the envelope, BDAT and the first chunk in one write:
// RFC 3030 (section 2; section 4.2 shows it) lets BDAT follow RCPT in one
// pipelined group, so a message that fits one chunk costs a single round
// trip. The data then goes out before the RCPT replies are known, which is
// only right when a refused recipient cannot leave the message delivered
// to fewer recipients than the caller allowed: one recipient, or
// AllowPartial. A larger message learns the envelope's fate before its
// second chunk.
func (c *Client) sendOneTrip(ctx context.Context, cmds, to []string, msg io.Reader, o *MailOptions, res *Result) error {
	env := &pipedEnvelope{cmds: cmds, check: func(replies []*mailsec.Reply) error {
		return c.checkEnvelope(ctx, cmds, to, replies, o, res, true)
	}}
	final, n, err := c.bdat(ctx, msg, o.Size, env)
	res.Bytes = n
	if env.replies != nil && env.lastChunk {
		// Envelope replies read behind the last chunk: a refused MAIL or
		// RCPT explains a refused BDAT better than BDAT's own reply.
		if cerr := c.checkEnvelope(ctx, cmds, to, env.replies, o, res, true); cerr != nil {
			return cerr
		}
	}
	if err != nil {
		return err
	}
	return finish(res, final)
}

// finish records the final reply of a transaction.
func finish(res *Result, final *mailsec.Reply) error {
	res.Reply = final
	if final.Code != 250 {
		return replyErr(final, "end of data", mailsec.SMTPServer)
	}
	return nil
}

// checkEnvelope records the MAIL and RCPT replies (MAIL's first, then the
// RCPTs in order) and aborts the transaction when it cannot go on.
func (c *Client) checkEnvelope(ctx context.Context, cmds, to []string, replies []*mailsec.Reply, o *MailOptions, res *Result, chunking bool) error {
	if replies[0].Code != 250 {
		return c.abort(ctx, replies, chunking, replyErr(replies[0], cmds[0], mailsec.SMTPServer))
	}
	var firstBad error
	accepted := 0
	res.Recipients = res.Recipients[:0]
	for i, addr := range to {
		rep := replies[1+i]
		ok := rep.Code == 250 || rep.Code == 251
		res.Recipients = append(res.Recipients, RecipientResult{Address: addr, OK: ok, Reply: rep})
		if ok {
			accepted++
		} else if firstBad == nil {
			firstBad = replyErr(rep, "RCPT TO:<"+addr+">", mailsec.SMTPServer)
		}
	}
	if accepted == 0 || (firstBad != nil && !o.AllowPartial) {
		return c.abort(ctx, replies, chunking, firstBad)
	}
	return nil
}

// transaction checks one message's envelope before anything is sent, for
// Send and SendBatch alike: the options (the zero value for nil) and the
// MAIL and RCPT lines.
func (c *Client) transaction(from string, to []string, opts *MailOptions) (MailOptions, []string, error) {
	var o MailOptions
	if opts != nil {
		o = *opts
	}
	if len(to) == 0 {
		return o, nil, mailsec.Errorf(mailsec.Data, "send", nil, "no recipients")
	}
	cmds, err := c.envelope(from, to, &o)
	return o, cmds, err
}

// envelope validates the addresses and builds MAIL and RCPT lines.
func (c *Client) envelope(from string, to []string, o *MailOptions) ([]string, error) {
	needUTF8, err := checkAddress(from, true)
	if err != nil {
		return nil, err
	}
	for _, t := range to {
		u, err := checkAddress(t, false)
		if err != nil {
			return nil, err
		}
		needUTF8 = needUTF8 || u
	}
	mail := "MAIL FROM:<" + from + ">"
	if _, ok := c.ext["SIZE"]; ok && o.Size > 0 {
		if max, _ := strconv.ParseInt(c.ext["SIZE"], 10, 64); max > 0 && o.Size > max {
			return nil, mailsec.Errorf(mailsec.Data, "MAIL FROM", nil,
				"the message is %d octets and the server accepts at most %d (RFC 1870)", o.Size, max)
		}
		mail += " SIZE=" + strconv.FormatInt(o.Size, 10)
	}
	body, err := o.bodyParam(c.ext)
	if err != nil {
		return nil, err
	}
	mail += body
	if needUTF8 {
		if _, ok := c.ext["SMTPUTF8"]; !ok {
			return nil, mailsec.Errorf(mailsec.Unsupported, "MAIL FROM", nil,
				"an address is not ASCII and the server does not offer SMTPUTF8 (RFC 6531)")
		}
		mail += " SMTPUTF8"
	}
	if o.RequireTLS {
		// RFC 8689 section 4.1: the option only means something on a
		// session that is itself under TLS, to a server that keeps it.
		if c.wire.TLS == nil {
			return nil, mailsec.Errorf(mailsec.Unsupported, "MAIL FROM", nil, "REQUIRETLS needs a session under TLS (RFC 8689 section 4.1)")
		}
		if _, ok := c.ext["REQUIRETLS"]; !ok {
			return nil, mailsec.Errorf(mailsec.Unsupported, "MAIL FROM", nil, "the server does not offer REQUIRETLS (RFC 8689), so it would not keep the requirement")
		}
		mail += " REQUIRETLS"
	}
	dsnMail, rcptParams, err := o.dsnParams(c.ext)
	if err != nil {
		return nil, err
	}
	mail += dsnMail
	cmds := []string{mail}
	for _, t := range to {
		cmds = append(cmds, "RCPT TO:<"+t+">"+rcptParams(t))
	}
	return cmds, nil
}

// batch sends the commands and reads one reply for each: all in one write
// when pipelining, else one after the other.
func (c *Client) batch(ctx context.Context, cmds []string, pipelining bool) ([]*mailsec.Reply, error) {
	if !pipelining {
		replies := make([]*mailsec.Reply, 0, len(cmds))
		for i, line := range cmds {
			rep, err := c.cmd(ctx, opName(line), line)
			if err != nil {
				return nil, err
			}
			replies = append(replies, rep)
			// Without pipelining, a refused MAIL makes the rest pointless.
			if i == 0 && rep.Code != 250 {
				for range cmds[1:] {
					replies = append(replies, &mailsec.Reply{Code: 503, Lines: []string{"not sent: MAIL FROM was refused"}})
				}
				return replies, nil
			}
		}
		return replies, nil
	}
	done := c.wire.Guard(ctx, 1)
	defer done()
	if err := c.sendLines(ctx, cmds); err != nil {
		return nil, err
	}
	if err := c.wire.Flush("MAIL FROM"); err != nil {
		return nil, c.wire.Fail(ctx, err)
	}
	return c.readReplies(ctx, cmds)
}

// sendLines buffers a pipelined command group; a failure breaks the
// session. Send, the one-trip BDAT path and SendBatch all write envelopes
// through it.
func (c *Client) sendLines(ctx context.Context, cmds []string) error {
	for _, line := range cmds {
		if err := c.wire.Send(opName(line), line, line); err != nil {
			return c.wire.Fail(ctx, err)
		}
	}
	return nil
}

// readReplies reads one reply for each command of a pipelined group, in
// order; a failure breaks the session.
func (c *Client) readReplies(ctx context.Context, cmds []string) ([]*mailsec.Reply, error) {
	replies := make([]*mailsec.Reply, 0, len(cmds))
	for _, line := range cmds {
		rep, err := c.read(opName(line))
		if err != nil {
			return nil, c.wire.Fail(ctx, err)
		}
		replies = append(replies, rep)
	}
	return replies, nil
}

func opName(line string) string {
	op, _, _ := strings.Cut(line, ":")
	return op
}

// abort ends a refused transaction so the session stays usable: RSET, or,
// when a pipelined DATA was already accepted, closing the connection, since
// any end of data would deliver the message.
func (c *Client) abort(ctx context.Context, replies []*mailsec.Reply, chunking bool, cause error) error {
	if !chunking && replies[len(replies)-1].Code == 354 {
		c.wire.Fail(ctx, cause)
		return cause
	}
	if err := c.Reset(ctx); err != nil {
		c.wire.Log.Warn("RSET after a refused transaction failed", "error", err)
	}
	return cause
}

// data sends the message after a 354 and reads the final reply.
func (c *Client) data(ctx context.Context, msg io.Reader) (*mailsec.Reply, int64, error) {
	done := c.wire.Guard(ctx, 2)
	defer done()
	return c.dataThen(ctx, msg, nil)
}

// dataThen sends the dot-stuffed message and its end-of-data mark after a
// 354, then next in the same write (SendBatch's following envelope, which
// RFC 2920 section 3.1 lets message content open), and reads the final
// reply, under the caller's guard. A failure breaks the session.
func (c *Client) dataThen(ctx context.Context, msg io.Reader, next []string) (*mailsec.Reply, int64, error) {
	n, err := copyMessage(c.wire.W, msg, c.readBuf(), true, c.opts.AllowLongLines)
	if err != nil {
		// The end-of-data mark was not sent, so closing the connection
		// makes the server drop the partial message (RFC 5321 section
		// 3.3, a transaction without its end is not delivered).
		return nil, n, c.wire.Fail(ctx, netOr(err, "DATA"))
	}
	c.wire.Trace(true, fmt.Sprintf("[message: %d octets]", n))
	if err := c.wire.Send("DATA", ".", "."); err != nil {
		return nil, n, c.wire.Fail(ctx, err)
	}
	if err := c.sendLines(ctx, next); err != nil {
		return nil, n, err
	}
	if err := c.wire.Flush("DATA"); err != nil {
		return nil, n, c.wire.Fail(ctx, err)
	}
	rep, err := c.read("end of data")
	if err != nil {
		return nil, n, c.wire.Fail(ctx, err)
	}
	return rep, n, nil
}

// bdat sends the message in BDAT chunks (RFC 3030). The last chunk is known
// only at the end of the input, so one chunk is always held back.
func (c *Client) bdat(ctx context.Context, msg io.Reader, sizeHint int64, env *pipedEnvelope) (*mailsec.Reply, int64, error) {
	done := c.wire.Guard(ctx, 2)
	defer done()
	size := chunkSize
	if sizeHint > 0 && sizeHint < int64(size) {
		// LF becomes CRLF, so leave room for a few more octets than the file has.
		size = int(sizeHint) + int(sizeHint)/4 + 64
	}
	// The chunk buffer lives as long as the session, so a session sending
	// many small messages allocates it once.
	if cap(c.chunkBuf) < size {
		c.chunkBuf = make([]byte, 0, size)
	}
	cw := &chunker{c: c, ctx: ctx, buf: c.chunkBuf[:0], env: env}
	n, err := copyMessage(cw, msg, c.readBuf(), false, c.opts.AllowLongLines)
	if err != nil {
		if cw.refused != nil {
			return nil, n, cw.refused
		}
		return nil, n, c.wire.Fail(ctx, netOr(err, "BDAT"))
	}
	rep, err := cw.send(true)
	return rep, n, err
}

// readBuf returns the session's message read buffer, reused by every
// transaction so that a session sending many messages allocates it once.
func (c *Client) readBuf() []byte {
	if c.copyBuf == nil {
		c.copyBuf = make([]byte, 64*1024)
	}
	return c.copyBuf
}

// pipedEnvelope is a MAIL/RCPT group that goes out in the same write as the
// first BDAT chunk.
type pipedEnvelope struct {
	cmds []string
	// check judges the replies when they arrive before a later chunk is
	// sent; an error stops the transaction there.
	check func([]*mailsec.Reply) error
	// replies are the envelope's replies once read; lastChunk says they
	// were read behind the last chunk, so nothing could be stopped.
	replies   []*mailsec.Reply
	lastChunk bool
}

// chunker collects normalised message octets and sends each full chunk as a
// BDAT command.
type chunker struct {
	c       *Client
	ctx     context.Context
	buf     []byte
	env     *pipedEnvelope // sent before the first chunk, then nil
	refused error
}

func (w *chunker) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		if len(w.buf) == cap(w.buf) {
			if _, err := w.send(false); err != nil {
				return total - len(p), err
			}
		}
		n := min(cap(w.buf)-len(w.buf), len(p))
		w.buf = append(w.buf, p[:n]...)
		p = p[n:]
	}
	return total, nil
}

// send transmits the buffered chunk, LAST when last, and reads its reply.
func (w *chunker) send(last bool) (*mailsec.Reply, error) {
	c := w.c
	env := w.env
	w.env = nil
	if env != nil {
		if err := c.sendLines(w.ctx, env.cmds); err != nil {
			return nil, err
		}
		if !last {
			// More than one chunk: hear the envelope's fate before any data.
			if err := c.wire.Flush("MAIL FROM"); err != nil {
				return nil, c.wire.Fail(w.ctx, err)
			}
			if err := w.readEnvelope(env); err != nil {
				return nil, err
			}
			if err := env.check(env.replies); err != nil {
				w.refused = err
				return nil, err
			}
		}
	}
	line := "BDAT " + strconv.Itoa(len(w.buf))
	if last {
		line += " LAST"
	}
	if err := c.wire.Send("BDAT", line, line); err != nil {
		return nil, c.wire.Fail(w.ctx, err)
	}
	if _, err := c.wire.W.Write(w.buf); err != nil {
		return nil, c.wire.Fail(w.ctx, mailsec.NetError("BDAT", mailsec.SocketTx, err))
	}
	c.wire.Trace(true, fmt.Sprintf("[chunk: %d octets]", len(w.buf)))
	w.buf = w.buf[:0]
	if err := c.wire.Flush("BDAT"); err != nil {
		return nil, c.wire.Fail(w.ctx, err)
	}
	if env != nil && last {
		env.lastChunk = true
		if err := w.readEnvelope(env); err != nil {
			return nil, err
		}
	}
	rep, err := c.read("BDAT")
	if err != nil {
		return nil, c.wire.Fail(w.ctx, err)
	}
	if !last && rep.Code != 250 {
		// A refused chunk ends the transaction on the server (RFC 3030
		// section 2); RSET makes sure before the session is reused.
		w.refused = replyErr(rep, "BDAT", mailsec.SMTPServer)
		if err := c.Reset(w.ctx); err != nil {
			c.wire.Log.Warn("RSET after a refused chunk failed", "error", err)
		}
		return nil, w.refused
	}
	return rep, nil
}

// readEnvelope reads one reply for each envelope command. On failure
// env.replies stays nil, so that sendOneTrip never judges a partial list
// as the envelope's replies (it once indexed past its end).
func (w *chunker) readEnvelope(env *pipedEnvelope) error {
	replies, err := w.c.readReplies(w.ctx, env.cmds)
	env.replies = replies
	return err
}

// netOr keeps a coded error as it is and codes a bare write error.
func netOr(err error, op string) error {
	if mailsec.CodeOf(err) != 0 {
		return err
	}
	return mailsec.NetError(op, mailsec.SocketTx, err)
}
