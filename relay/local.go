package relay

import (
	"context"
	"io"
	"maps"
	"strings"
	"time"

	"github.com/mailsec/mailsec/dsn"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/store"
)

// Local is the local mail store as the relay sees it: which domains are
// local, which mailboxes exist, and delivery into them.
type Local interface {
	// IsLocal reports whether domain is one of the local domains.
	IsLocal(domain string) bool
	// Exists reports whether a mailbox (a lower-case local part) exists.
	Exists(mailbox string) bool
	// Deliver stores the message durably in every mailbox of d: it is
	// the final delivery, which records the envelope in each copy
	// (store.DeliverMail).
	Deliver(d store.Delivery, msg io.Reader) error
}

// mailbox returns the local mailbox of addr, "" when it is not local.
func (r *Relay) mailbox(addr string) string {
	if r.o.Local == nil {
		return ""
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || !r.o.Local.IsLocal(addr[at+1:]) {
		return ""
	}
	return strings.ToLower(addr[:at])
}

// deliverLocal stores the message in the mailboxes of the local
// recipients idx, all in one delivery.
func (r *Relay) deliverLocal(ctx context.Context, e *queue.Entry, idx []int) map[int]result {
	out := map[int]result{}
	d := store.Delivery{From: e.From}
	var ok []int
	seen := map[string]bool{}
	local := &queue.Outcome{TLS: &queue.TLSRecord{Policy: "local"}}
	for _, k := range idx {
		box := r.mailbox(e.Recipients[k].Addr)
		if strings.HasPrefix(box, `"`) || !r.o.Local.Exists(box) {
			out[k] = allFailed([]int{k}, newFailure("5.1.1", nil, "no such local mailbox %q", box), local)[k]
			continue
		}
		ok = append(ok, k)
		if !seen[box] {
			seen[box] = true
			d.To = append(d.To, store.LocalRecipient(box, e.Recipients[k].Addr))
		}
	}
	if len(ok) == 0 {
		return out
	}
	body, err := r.o.Queue.Body(ctx, e.ID)
	if err == nil {
		err = r.o.Local.Deliver(d, body)
		body.Close()
	}
	if err != nil {
		maps.Copy(out, allFailed(ok, newFailure("4.3.0", err, "local delivery failed: %v", err), local))
		return out
	}
	for _, k := range ok {
		o := *local
		o.Time = time.Now()
		out[k] = result{status: queue.Delivered, outcome: &o, notice: dsn.Delivered}
	}
	return out
}
