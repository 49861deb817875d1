package smtpd

import (
	"errors"
	"io"
	"strings"
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
		return &reply{code: 421, enh: "4.4.2", text: "Connection error", close: true}
	}
	ss.in.startData(ss.srv.Limits.CommandTimeout, ss.srv.Limits.DataTimeout)
	dr := newDataReader(ss.r, ss.srv.Limits.MaxMessageSize)
	err := ss.deliver(dr)
	dr.drain()
	tx := ss.tx
	ss.tx = nil
	switch {
	case dr.ioErr != nil:
		// The message did not arrive whole, so nothing was stored; the
		// connection is unusable.
		ss.log.Info("message transfer failed", "err", dr.ioErr)
		if isTimeout(dr.ioErr) {
			return errTimeout
		}
		return &reply{code: 421, enh: "4.4.2", text: "Connection error", close: true}
	case dr.refusal != nil:
		ss.log.Warn("message refused", "reason", dr.refusal.text, "from", tx.env.From)
		return dr.refusal
	case err != nil:
		ss.log.Error("delivery failed", "err", err)
		return errStoreFailed
	}
	return ss.accepted(tx, dr.n)
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

// deliver hands the message, behind a fresh Received header, to the
// Backend.
func (ss *session) deliver(msg io.Reader) error {
	return ss.srv.Backend.Deliver(ss.message(msg))
}

// message returns a copy of the transaction's envelope and msg behind the
// Received header; the result does not refer to the session any more, so
// it may be used from another goroutine.
func (ss *session) message(msg io.Reader) (*Envelope, io.Reader) {
	env := ss.tx.env
	env.AuthUser = ss.authUser
	return &env, io.MultiReader(strings.NewReader(ss.received(&env)), msg)
}

// accepted logs a delivered message and builds the 250 reply, which is
// sent only now that the Backend made the message durable (RFC 5321
// section 6.1).
func (ss *session) accepted(tx *transaction, size int64) *reply {
	ss.log.Info("message delivered", "from", tx.env.From, "rcpts", len(tx.env.To), "size", size)
	return rep(250, "2.0.0", "OK: message accepted, id "+ss.id)
}

// errAborted is what a BDAT delivery is aborted with; the Backend sees it
// in place of io.EOF and stores nothing.
var errAborted = errors.New("smtpd: transaction aborted")
