// Package fetch downloads a POP3 maildrop (RFC 1939) into a mailbox in the
// crash-safe order: each message is durable in the mailbox before its UIDL
// is recorded in the mailbox's state, and every record is durable before
// anything is deleted on the server, where deletions happen only on a
// clean QUIT (RFC 1939 section 6). A crash at any point loses nothing; with
// a Maildir, whose file names carry the UIDL, it duplicates nothing either.
//
// The caller opens the mailbox and its state (mailbox.OpenState, which
// takes the state's lock) before dialing, so that a second fetch into the
// same mailbox fails before it connects, then dials the server with the
// pop3 package and hands both to Run.
package fetch

import (
	"context"
	"io"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/mailbox"
	"github.com/mailsec/mailsec/pop3"
)

// Options say what Run fetches besides the session and the state. The zero
// value fetches every message not fetched before, keeps them all on the
// server, and reports nothing.
type Options struct {
	// Delete removes from the server every message safely stored: those
	// of this run, and those an earlier run stored without deleting them.
	Delete bool
	// All downloads every message, also those fetched before.
	All bool
	// Limit is the most messages one run downloads; 0 means no limit.
	Limit int
	// Progress, when set, watches the download; nil reports nothing.
	Progress Progress
	// Refused, when set, is told of each message the server refuses to
	// hand out (gone, or locked): it stays on the server and the others go
	// on. nil only counts them (Result.Refused).
	Refused func(num int, err error)

	// step, when set, is called at each step of a delivery with the
	// message number (0 for the steps of a whole run), for the crash tests
	// to kill the process there.
	step func(name string, num int)
}

// Progress watches a download, for a progress bar.
type Progress interface {
	// Start is called once, with the number and total listed size of the
	// messages to download, before the first of them.
	Start(messages int, octets int64)
	// Body wraps the body of each message as it downloads, so its octets
	// can be counted as they arrive.
	Body(r io.Reader) io.Reader
	// Downloaded is called when message num has downloaded whole.
	Downloaded(num int)
}

// Result is what a run did. Run returns it on error too, with what was done
// until then.
type Result struct {
	// OnServer is how many messages the maildrop held.
	OnServer int `json:"on_server"`
	// Fetched is how many messages were stored and recorded.
	Fetched int `json:"fetched"`
	// Bytes is the size of the fetched messages as stored.
	Bytes int64 `json:"bytes"`
	// Skipped is how many messages were fetched by an earlier run.
	Skipped int `json:"skipped"`
	// Refused is how many messages the server refused to hand out.
	Refused int `json:"refused,omitempty"`
	// Deleted is how many messages QUIT removed from the server.
	Deleted int `json:"deleted"`
}

func (o *Options) trace(name string, num int) {
	if o.step != nil {
		o.step(name, num)
	}
}

// Run downloads the new messages of the session c into the mailbox of st
// (see the package comment for the order), deletes them on the server with
// o.Delete, and ends the session with QUIT. st is closed on success, after
// forgetting the UIDLs the server no longer has, so the state stays as
// small as the maildrop; on error the caller closes it, which makes what
// was delivered durable and recorded. A server without UIDL (RFC 1939
// section 7: optional) cannot tell new mail from old, so only o.All or
// o.Delete fetch from it.
func Run(ctx context.Context, c *pop3.Client, st *mailbox.State, o *Options) (Result, error) {
	var opts Options
	if o != nil {
		opts = *o
	}
	var res Result
	list, err := c.List(ctx)
	if err != nil {
		return res, err
	}
	res.OnServer = len(list)
	uids, err := c.Uidl(ctx)
	switch {
	case err != nil && mailsec.CodeOf(err) == mailsec.POPServer && (opts.All || opts.Delete):
		uids = nil
	case err != nil && mailsec.CodeOf(err) == mailsec.POPServer:
		return res, mailsec.Errorf(mailsec.Unsupported, "UIDL", err,
			"the server cannot tell messages apart (no UIDL), so new mail cannot be told from old; use --all or --delete")
	case err != nil:
		return res, err
	}
	uidOf := make(map[int]string, len(uids))
	for _, u := range uids {
		uidOf[u.Num] = u.UID
	}

	todo, seen, total := choose(list, uidOf, st, &opts)
	res.Skipped = len(seen)
	if opts.Progress != nil {
		opts.Progress.Start(len(todo), total)
	}
	sizeOf := make(map[int]int64, len(list))
	for _, m := range list {
		sizeOf[m.Num] = m.Size
	}
	dv := newDeliverer(st, &opts)
	err = c.RetrEach(ctx, todo, func(num int, body io.Reader, rerr error) error {
		if rerr != nil {
			res.Refused++
			if opts.Refused != nil {
				opts.Refused(num, rerr)
			}
			return nil
		}
		var r io.Reader = &sizeCap{r: body, num: num, listed: sizeOf[num], left: maxSize(sizeOf[num])}
		if opts.Progress != nil {
			r = opts.Progress.Body(r)
		}
		if err := dv.deliver(num, uidOf[num], r); err != nil {
			return err
		}
		if opts.Progress != nil {
			opts.Progress.Downloaded(num)
		}
		return nil
	})
	// Messages downloaded whole are committed even when a later one broke
	// off: they are complete, and each is recorded on its own.
	if ferr := dv.finish(); err == nil {
		err = ferr
	}
	res.Fetched, res.Bytes = len(dv.fetched), dv.bytes
	if err != nil {
		return res, err
	}

	var dele []int
	if opts.Delete {
		// Messages recorded in an earlier run but not deleted then (that
		// run ended early) are safely stored too.
		dele = append(append(dele, seen...), dv.fetched...)
		if err := c.DeleEach(ctx, dele); err != nil {
			return res, err
		}
		opts.trace("deleted", 0)
	}
	if err := c.Quit(ctx); err != nil {
		return res, err
	}
	opts.trace("quit", 0)
	res.Deleted = len(dele)
	if uids == nil {
		return res, st.Close()
	}
	gone := make(map[string]bool, len(dele))
	for _, n := range dele {
		gone[uidOf[n]] = true
	}
	onServer := make(map[string]bool, len(uids))
	for _, u := range uids {
		onServer[u.UID] = true
	}
	return res, st.Retain(func(uid string) bool { return onServer[uid] && !gone[uid] })
}

// choose picks the messages to download, in maildrop order: those not
// recorded in st (all with o.All), at most o.Limit of them. seen are the
// messages recorded before, and total the listed size of todo.
func choose(list []pop3.MsgInfo, uidOf map[int]string, st *mailbox.State, o *Options) (todo, seen []int, total int64) {
	for _, m := range list {
		if uid := uidOf[m.Num]; !o.All && uid != "" && st.Seen(uid) {
			seen = append(seen, m.Num)
			continue
		}
		if o.Limit > 0 && len(todo) == o.Limit {
			continue
		}
		todo = append(todo, m.Num)
		total += m.Size
	}
	return todo, seen, total
}
