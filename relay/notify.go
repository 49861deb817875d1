package relay

import (
	"bytes"
	"context"
	"strconv"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/dsn"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/store"
)

// notify tells the sender about the recipients idx: a bounce (RFC 3464
// delivery status notification, action failed), a delay notice (action
// delayed), or for success each recipient's notice (result.notice:
// relayed or delivered, RFC 3464 section 2.3.3). A local sender gets it in
// the mailbox at once; any other through the queue, from the null sender
// so that it can never cause a notice in turn. Mail from the null sender
// gets none (RFC 5321 section 6.1, RFC 3461 section 6.2), and neither do
// recipients whose NOTIFY excludes the event.
func (r *Relay) notify(ctx context.Context, e *queue.Entry, idx []int, results map[int]result, action dsn.Action) {
	event := map[dsn.Action]string{dsn.Failed: "FAILURE", dsn.Delayed: "DELAY"}[action]
	if event == "" {
		event = "SUCCESS"
	}
	if e.From == "" {
		r.log.Info("no notice: the message has the null sender", "id", e.ID, "event", event)
		return
	}
	rep := &dsn.Report{
		ReportingMTA: r.o.Hostname,
		From:         "MAILER-DAEMON@" + r.o.Hostname,
		To:           e.From,
		EnvID:        e.EnvID,
		Arrival:      e.Created,
		// RFC 8689 section 5: a notice about a REQUIRETLS message must not
		// carry its content where the message itself could not go.
		Headers:  e.Ret == "HDRS" || e.RequireTLS,
		EightBit: e.Body == "8BITMIME",
		UTF8:     e.UTF8,
	}
	for _, k := range idx {
		rc := e.Recipients[k]
		if !rc.NotifyOn(event) {
			continue
		}
		res := results[k]
		dr := dsn.Recipient{Final: rc.Addr, Original: rc.ORcpt, Action: dsn.Failed, LastAttempt: time.Now()}
		if res.fail != nil {
			dr.Status = res.fail.status
			if res.fail.reply != nil {
				setDiagnostic(&dr, res.fail.reply)
			} else {
				dr.Diagnostic = res.fail.detail
			}
		}
		if dr.Status == "" {
			dr.Status = "5.0.0"
		}
		if res.outcome != nil {
			dr.RemoteMTA = res.outcome.Host
		}
		switch {
		case action == dsn.Delayed:
			dr.Action = dsn.Delayed
			dr.Status = "4" + dr.Status[1:]
			dr.WillRetryUntil = e.Created.Add(r.o.Lifetime)
		case event == "SUCCESS":
			dr.Action, dr.Status = res.notice, "2.0.0"
			if rp := res.outcome.Reply; rp != nil {
				setDiagnostic(&dr, rp)
			}
		}
		rep.Recipients = append(rep.Recipients, dr)
	}
	if len(rep.Recipients) == 0 {
		return
	}
	body, err := r.o.Queue.Body(ctx, e.ID)
	if err != nil {
		r.log.Error("notice not sent: cannot read the message", "id", e.ID, "err", err)
		return
	}
	var buf bytes.Buffer
	err = dsn.Write(&buf, rep, body, e.Size)
	body.Close()
	if err != nil {
		r.log.Error("notice not sent: cannot compose it", "id", e.ID, "err", err)
		return
	}
	if box := r.mailbox(e.From); box != "" && r.o.Local.Exists(box) {
		// A notice has the null reverse path (RFC 5321 section 4.5.5).
		d := store.Delivery{To: []store.Recipient{store.LocalRecipient(box, e.From)}}
		if err := r.o.Local.Deliver(d, bytes.NewReader(buf.Bytes())); err == nil {
			r.log.Info("notice delivered to the local sender", "id", e.ID, "event", event, "to", e.From)
			return
		}
	}
	env := &queue.Envelope{Recipients: []queue.Recipient{{Addr: e.From}}, UTF8: e.UTF8, RequireTLS: e.RequireTLS}
	if e.Body == "8BITMIME" {
		env.Body = e.Body
	}
	id, err := r.o.Queue.Enqueue(ctx, env, bytes.NewReader(buf.Bytes()))
	if err != nil {
		r.log.Error("notice not queued", "id", e.ID, "event", event, "err", err)
		return
	}
	r.log.Info("notice queued", "id", e.ID, "event", event, "to", e.From, "notice", id)
}

// setDiagnostic puts a server's reply into a notice: as received in
// Diagnostic-Code, with the channel it came over for the readable part.
func setDiagnostic(dr *dsn.Recipient, rp *mailsec.Reply) {
	dr.Diagnostic = strconv.Itoa(rp.Code) + " " + rp.Enhanced + " " + rp.Text()
	dr.DiagnosticChannel = rp.Channel
}
