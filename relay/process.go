package relay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"maps"
	"time"

	"github.com/mailsec/mailsec/dsn"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/smtp"
)

// maxHops is the number of Received headers beyond which a message is
// taken to be looping (RFC 5321 section 6.3; Postfix's hopcount_limit).
const maxHops = 50

// process makes one delivery attempt for every pending recipient of a
// claimed entry and records the outcome.
func (r *Relay) process(ctx context.Context, e *queue.Entry) {
	pending := e.Pending()
	results := map[int]result{}
	h, err := r.readHeader(ctx, e.ID)
	if err != nil {
		maps.Copy(results, allFailed(pending, newFailure("4.3.0", err, "cannot read the queued message"), nil))
	} else if h.hops > maxHops {
		maps.Copy(results, allFailed(pending, newFailure("5.4.6", nil, "the message has passed %d servers: a mail loop", h.hops), nil))
	} else {
		r.attempt(ctx, e, h, pending, results)
	}
	if ctx.Err() != nil {
		// Shutting down: what was tried is not recorded, so the message
		// is tried again after the restart (at most once more).
		return
	}
	r.finish(ctx, e, results)
}

// attempt delivers the recipients idx, local ones into their mailboxes and
// the others grouped by destination, so that recipients sharing a next
// hop share a transaction.
func (r *Relay) attempt(ctx context.Context, e *queue.Entry, h header, idx []int, results map[int]result) {
	var local []int
	byDomain := map[string][]int{}
	var domains []string
	for _, k := range idx {
		if err := smtp.CheckAddress(e.Recipients[k].Addr); err != nil {
			// Set aside before any transaction: it could never be sent,
			// and it must not take the other recipients down with it.
			results[k] = allFailed([]int{k}, newFailure("5.1.3", err, "%v", err), nil)[k]
			continue
		}
		if r.mailbox(e.Recipients[k].Addr) != "" {
			local = append(local, k)
			continue
		}
		d := e.Recipients[k].Domain()
		if byDomain[d] == nil {
			domains = append(domains, d)
		}
		byDomain[d] = append(byDomain[d], k)
	}
	if len(local) > 0 {
		maps.Copy(results, r.deliverLocal(ctx, e, local))
	}
	type group struct {
		d   *destination
		idx []int
	}
	var groups []*group
	byKey := map[string]*group{}
	for _, dom := range domains {
		d, f := r.resolveDestination(ctx, dom)
		if f != nil {
			maps.Copy(results, allFailed(byDomain[dom], f, nil))
			continue
		}
		g := byKey[d.reuseKey()]
		if g == nil {
			g = &group{d: d}
			byKey[d.reuseKey()] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, byDomain[dom]...)
	}
	for _, g := range groups {
		// Once per destination: domains sharing a next hop share its plan.
		r.planHosts(ctx, g.d, h, e.RequireTLS)
		maps.Copy(results, r.deliverTo(ctx, e, g.d, g.idx))
	}
}

// finish records the attempt: outcomes, notices and the next try, or the
// end of the entry when no recipient is left.
func (r *Relay) finish(ctx context.Context, e *queue.Entry, results map[int]result) {
	now := time.Now()
	age := now.Sub(e.Created)
	a := &queue.Attempt{Recipients: map[int]queue.RecipientUpdate{}}
	var failed, deferred, succeeded []int
	for k, res := range results {
		if res.status == queue.Pending && age >= r.o.Lifetime {
			res.status = queue.Failed
			res.fail = expired(res.fail, r.o.Lifetime)
			res.outcome.Detail = res.fail.detail
			results[k] = res
		}
		a.Recipients[k] = queue.RecipientUpdate{Status: res.status, Outcome: res.outcome}
		switch res.status {
		case queue.Failed:
			failed = append(failed, k)
		case queue.Pending:
			deferred = append(deferred, k)
		case queue.Delivered:
			if res.notice != "" {
				succeeded = append(succeeded, k)
			}
		}
		r.report(e, k, res, age)
	}
	// The notices go into the queue before the outcome is recorded: after
	// a crash in between, the sender may be told twice, never not at all.
	if len(failed) > 0 {
		r.notify(ctx, e, failed, results, dsn.Failed)
	}
	if len(succeeded) > 0 {
		r.notify(ctx, e, succeeded, results, dsn.Relayed)
	}
	if len(deferred) > 0 && !e.DelayNotified && r.o.DelayNotice > 0 && age >= r.o.DelayNotice {
		r.notify(ctx, e, deferred, results, dsn.Delayed)
		a.DelayNotified = true
	}
	done := len(deferred) == 0 && len(pendingBesides(e, results)) == 0
	if !done {
		a.NextAttempt = now.Add(r.backoff(e.Attempts + 1))
	}
	// An outcome that cannot be written now (a database restarting) is
	// tried again for a while: once the lease runs out, a delivery made
	// but not recorded is made again.
	var err error
	for wait := 100 * time.Millisecond; ; wait *= 2 {
		if done {
			err = r.o.Queue.Complete(ctx, e.Lease)
		} else {
			err = r.o.Queue.Record(ctx, e.Lease, a)
		}
		if err == nil || errors.Is(err, queue.ErrLeaseLost) || errors.Is(err, queue.ErrClosed) || wait > 30*time.Second {
			break
		}
		r.log.Warn("recording the outcome failed, trying again", "id", e.ID, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
	if err != nil {
		if errors.Is(err, queue.ErrLeaseLost) {
			r.log.Warn("outcome discarded: the message was claimed again, retried or deleted meanwhile", "id", e.ID)
			return
		}
		r.log.Error("recording the outcome failed; the message will be tried again", "id", e.ID, "err", err)
	}
}

// pendingBesides lists the pending recipients the attempt did not cover.
func pendingBesides(e *queue.Entry, results map[int]result) []int {
	var out []int
	for _, k := range e.Pending() {
		if _, ok := results[k]; !ok {
			out = append(out, k)
		}
	}
	return out
}

// expired turns the last temporary failure into the final one of a
// message whose lifetime ran out (RFC 3463 X.4.7, delivery time expired).
func expired(last *failure, lifetime time.Duration) *failure {
	detail := "delivery time expired after " + lifetime.String()
	f := &failure{status: "5.4.7", detail: detail}
	if last != nil {
		f.reply, f.err = last.reply, last.err
		f.detail = detail + "; last error: " + last.detail
	}
	return f
}

// report logs one recipient's outcome and tells the observer.
func (r *Relay) report(e *queue.Entry, k int, res result, age time.Duration) {
	rc := e.Recipients[k]
	o := res.outcome
	kind := map[queue.Status]string{queue.Delivered: "delivered", queue.Pending: "deferred", queue.Failed: "bounced"}[res.status]
	attrs := []any{"id", e.ID, "from", e.From, "to", rc.Addr, "result", kind, "attempt", e.Attempts + 1,
		"delay", age.Round(time.Millisecond)}
	if o != nil {
		attrs = append(attrs, "host", o.Host, "addr", o.Addr)
		if o.TLS != nil {
			attrs = append(attrs, "tls_policy", o.TLS.Policy, "tls_version", o.TLS.Version,
				"tls_cipher", o.TLS.CipherSuite, "tls_cert", o.TLS.Verdict)
		}
		if o.Reply != nil {
			attrs = append(attrs, "reply", o.Reply.Code, "enhanced", o.Reply.Enhanced, "text", o.Reply.Text())
		}
		if o.Detail != "" {
			attrs = append(attrs, "detail", o.Detail)
		}
	}
	if res.status == queue.Delivered {
		r.log.Info("delivery attempt", attrs...)
	} else {
		r.log.Warn("delivery attempt", attrs...)
	}
	r.o.Observer.Delivery(DeliveryInfo{Result: kind, TLS: tlsLevel(o), Latency: age})
}

// header is what the relay reads from a queued message's header.
type header struct {
	// hops counts the Received fields.
	hops int
	// tlsOptional is a "TLS-Required: No" field (RFC 8689 section 3):
	// the sender asks that the recipient's TLS policies be ignored.
	tlsOptional bool
}

// readHeader reads the header of a queued message (at most 1 MiB of it).
func (r *Relay) readHeader(ctx context.Context, id queue.ID) (header, error) {
	var h header
	body, err := r.o.Queue.Body(ctx, id)
	if err != nil {
		return h, err
	}
	defer body.Close()
	br := bufio.NewReaderSize(io.LimitReader(body, 1<<20), 4096)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) <= 2 && (len(line) == 0 || line[0] == '\r' || line[0] == '\n') {
			return h, nil // the end of the header (or of the message)
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		switch {
		case !ok:
		case bytes.EqualFold(name, []byte("Received")):
			h.hops++
		case bytes.EqualFold(name, []byte("TLS-Required")):
			h.tlsOptional = bytes.EqualFold(bytes.TrimSpace(value), []byte("No"))
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return h, nil
		}
	}
}
