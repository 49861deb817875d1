package server

import (
	"context"
	"io"

	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/smtpd"
)

// backend stores what smtpd accepts: mail for local mailboxes only
// straight into the Maildirs, anything with a relayed recipient into the
// queue whole, local recipients included, so that a message is
// acknowledged after one durable write and is never half accepted. Local
// mail whose sender asked to hear of its delivery (NOTIFY=SUCCESS) goes
// through the queue too, whose delivery sends the "delivered" notice. Its
// RelayRule (a RecipientChecker) says who may relay: authenticated
// submitters and relay.trusted_networks when the queue is on, nobody
// otherwise.
type backend struct {
	smtpd.RelayRule
	local smtpd.Maildir
	q     queue.Queue // nil when relaying is off
}

// Deliver implements smtpd.Backend.
func (b *backend) Deliver(ctx context.Context, env *smtpd.Envelope, msg io.Reader) error {
	if b.q == nil || (!env.Relayed() && !wantsSuccessNotice(env)) {
		return b.local.Deliver(ctx, env, msg)
	}
	qe := &queue.Envelope{From: env.From, AuthUser: env.AuthUser, UTF8: env.UTF8, Body: env.Body,
		Ret: env.Ret, EnvID: env.EnvID, RequireTLS: env.RequireTLS}
	for _, r := range env.Rcpts {
		qe.Recipients = append(qe.Recipients, queue.Recipient{Addr: r.Addr, Notify: r.Notify, ORcpt: r.ORcpt})
	}
	_, err := b.q.Enqueue(ctx, qe, msg)
	return err
}

// wantsSuccessNotice reports whether a recipient of env asked to be told
// of its delivery (RFC 3461 section 4.1).
func wantsSuccessNotice(env *smtpd.Envelope) bool {
	for _, r := range env.Rcpts {
		if (queue.Recipient{Notify: r.Notify}).NotifyOn("SUCCESS") {
			return true
		}
	}
	return false
}
