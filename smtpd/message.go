package smtpd

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"time"

	"github.com/mailsec/mailsec/internal/srvconn"
)

// data handles DATA (RFC 5321 section 4.1.1.4).
func (ss *session) data(cmd command) *reply {
	if r := ss.readyForMessage(cmd.arg != ""); r != nil {
		return r
	}
	if ss.tx.bdat != nil {
		// RFC 3030 section 3: DATA and BDAT do not mix in one transaction.
		return rep(503, "5.5.1", "DATA not allowed after BDAT")
	}
	ss.send(rep(354, "", "End data with <CR><LF>.<CR><LF>"))
	if err := ss.flush(); err != nil {
		return errConnection
	}
	ss.in.startData(ss.srv.Limits.CommandTimeout, ss.srv.Limits.DataTimeout)
	dr := newDataReader(ss.r, ss.srv.Limits.MaxMessageSize)
	err := ss.message(dr).run()
	dr.drain()
	tx := ss.tx
	ss.tx = nil
	return ss.messageDone(&tx.env, dr.n, dr.ioErr, dr.refusal, err, dr.end)
}

// messageDone reports the fate of a message whose transfer is over, for
// DATA and BDAT alike, and answers it: the connection failed (ioErr), the
// content broke a rule (refusal), the Backend failed (err), or the message
// was stored, its last octet read at end. octets is what was received.
func (ss *session) messageDone(env *Envelope, octets int64, ioErr error, refusal *reply, err error, end time.Time) *reply {
	switch {
	case ioErr != nil:
		// The message did not arrive whole, so nothing was stored; the
		// connection is unusable.
		ss.log.Info("message transfer failed", "err", ioErr)
		ss.observeMessage(MessageInfo{Outcome: FailedTransfer, Octets: octets})
		return connFailed(ioErr)
	case refusal != nil:
		ss.observeMessage(MessageInfo{Outcome: refusalOutcome(refusal), Octets: octets})
		return refusal
	case err != nil:
		r, o := ss.deliveryFailed(err)
		ss.observeMessage(MessageInfo{Outcome: o, Octets: octets})
		return r
	}
	ss.observeMessage(MessageInfo{Outcome: Accepted, Octets: octets, StoreTime: time.Since(end)})
	return ss.accepted(env, octets)
}

// deliveryFailed answers a delivery that returned err: with the Backend's
// own refusal (RFC 5321 section 4.2.5: a failure after the data is
// answered like any other), or, for a failure it did not word, with a
// temporary one, which is logged.
func (ss *session) deliveryFailed(err error) (*reply, Outcome) {
	if r := replyFor(err, nil); r != nil {
		return r, RefusedPolicy
	}
	ss.log.Error("delivery failed", "err", err)
	return errStoreFailed, FailedStore
}

// connFailed answers a connection that failed in the middle of a
// command: errTimeout when a deadline passed, else errConnection.
func connFailed(err error) *reply {
	if srvconn.IsTimeout(err) {
		return errTimeout
	}
	return errConnection
}

// readyForMessage checks that DATA or BDAT may start a message now.
func (ss *session) readyForMessage(badArgs bool) *reply {
	switch {
	case badArgs:
		return errParamSyntax
	case ss.tx == nil:
		return errNeedMail
	case len(ss.tx.env.To) == 0:
		return errNeedRcpt
	}
	return nil
}

// delivery is a message on its way to the Backend: a copy of the
// transaction's envelope and the message behind the Received header,
// completed as a submission when the listener is one (sub, nil on MX). It
// does not refer to the session, so run may be called from another
// goroutine.
type delivery struct {
	env     *Envelope
	msg     io.Reader
	sub     *submission
	ctx     context.Context
	backend Backend
}

// run hands the message to the Backend and returns the verdict: the From
// check's refusal when there was one, else the Backend's.
func (d delivery) run() error { return d.sub.verdict(d.backend.Deliver(d.ctx, d.env, d.msg)) }

// message returns the delivery of msg in the transaction.
func (ss *session) message(msg io.Reader) delivery {
	e := ss.tx.env
	e.AuthUser = ss.authUser
	sub := ss.submission(msg, &e)
	if sub != nil {
		msg = sub
	}
	return delivery{&e, &headerReader{hdr: ss.received(&e), r: msg}, sub, ss.ctx, ss.srv.Backend}
}

// headerReader yields hdr, then r. Unlike io.MultiReader it has no
// WriteTo, which would copy the message through a fresh 32 KiB buffer per
// message in place of the one the Backend offers to io.CopyBuffer.
type headerReader struct {
	hdr string
	r   io.Reader
}

func (h *headerReader) Read(p []byte) (int, error) {
	if h.hdr != "" {
		n := copy(p, h.hdr)
		h.hdr = h.hdr[n:]
		return n, nil
	}
	return h.r.Read(p)
}

// accepted logs a delivered message and builds the 250 reply, which is
// sent only now that the Backend made the message durable (RFC 5321
// section 6.1).
func (ss *session) accepted(env *Envelope, size int64) *reply {
	if ss.log.Enabled(context.Background(), slog.LevelInfo) {
		ss.log.Info("message delivered", "from", env.From, "rcpts", len(env.To), "size", size)
	}
	if ss.okReply == nil {
		ss.okReply = rep(250, "2.0.0", "OK: message accepted, id "+ss.id)
	}
	return ss.okReply
}

// errAborted is what a BDAT delivery is aborted with; the Backend sees it
// in place of io.EOF and stores nothing.
var errAborted = errors.New("smtpd: transaction aborted")
