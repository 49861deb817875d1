package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/mailbox"
	"github.com/mailsec/mailsec/pop3"
)

func init() { commands = append(commands, fetchCmd()) }

// fetchSpec is what fetch is asked to do besides connecting.
type fetchSpec struct {
	maildir string
	mbox    string
	keep    bool
	delete  bool
	all     bool
	limit   int
}

// fetchResult is the --json output of fetch.
type fetchResult struct {
	OK           bool       `json:"ok"`
	Server       string     `json:"server"`
	Mailbox      string     `json:"mailbox,omitempty"`
	StateFile    string     `json:"state_file,omitempty"`
	sessionFacts            // tls_used, tls, security
	OnServer     int        `json:"on_server"`
	Fetched      int        `json:"fetched"`
	Bytes        int64      `json:"bytes"`
	Skipped      int        `json:"skipped"`
	Refused      int        `json:"refused,omitempty"`
	Deleted      int        `json:"deleted"`
	Error        *jsonError `json:"error,omitempty"`
}

func fetchCmd() *cobra.Command {
	var (
		cf   connFlags
		spec fetchSpec
	)
	cmd := &cobra.Command{
		Use:   "fetch --server HOST[:PORT] --user NAME (--maildir DIR | --mbox FILE)",
		Short: "Download new mail over POP3 into a Maildir or an mbox",
		Long: `Download mail over POP3 (POP3S on 995, else STLS) into a Maildir or mbox.

Only messages whose UIDL was not fetched before are downloaded (the state is
kept in MAILBOX.uidl); --all downloads everything. Each message is durable in
the mailbox before its UIDL is recorded, and recorded before it is deleted
on the server (--delete), so a crash loses nothing. A Maildir file name
carries the message's UIDL (",U=<base64url>"), so a crash duplicates
nothing there either. While a fetch runs, MAILBOX.uidl.lock is locked: a
second fetch into the same mailbox fails at once with exit status 75
(temporary failure; try again later). Besides the SASL
mechanisms, --auth takes "user" (USER/PASS) and "apop" (weak; only on
request); "auto" picks the strongest SASL mechanism, else USER/PASS.
No new mail is not an error: the exit status is 0.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (spec.maildir == "") == (spec.mbox == "") {
				return usageError{fmt.Errorf("give exactly one of --maildir DIR and --mbox FILE")}
			}
			if spec.keep && spec.delete {
				return usageError{fmt.Errorf("--keep and --delete exclude each other")}
			}
			if spec.limit < 0 {
				return usageError{fmt.Errorf("--limit must not be negative")}
			}
			res := &fetchResult{Server: cf.server}
			err := runFetch(cmd.Context(), &cf, &spec, res)
			res.OK = err == nil
			res.Error = toJSONError(err)
			if cf.json {
				printJSON(res)
			} else if err == nil {
				fmt.Fprintf(os.Stderr, "mailsec: fetched %d new message(s), %s; %d already fetched; %d deleted\n",
					res.Fetched, humanBytes(res.Bytes), res.Skipped, res.Deleted)
			}
			return err
		},
	}
	cf.register(cmd.Flags(), "995")
	spec.register(cmd.Flags())
	return cmd
}

// register adds fetch's own flags, besides the connection flags, to fs.
func (s *fetchSpec) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.maildir, "maildir", "", "deliver into this Maildir (created if missing)")
	fs.StringVar(&s.mbox, "mbox", "", "append to this mbox file (mboxrd, locked)")
	fs.BoolVar(&s.keep, "keep", false, "leave the messages on the server (the default)")
	fs.BoolVar(&s.delete, "delete", false, "delete the messages on the server once they are safely stored")
	fs.BoolVar(&s.all, "all", false, "download every message, also those fetched before")
	fs.IntVar(&s.limit, "limit", 0, "download at most N messages (0: no limit)")
}

// pop3Options are the POP3 client options the flags describe.
func (c *commonOpts) pop3Options(cf *connFlags) *pop3.Options {
	return &pop3.Options{TLSMode: c.mode, TLS: c.tls, AllowPlaintextAuth: cf.plaintextAuth,
		CommandTimeout: cf.timeout, Logger: c.logger, Transcript: cf.transcriptWriter(),
		Dialer: c.dialer, Auth: c.auth, Mechanism: c.mech}
}

func openMailbox(spec *fetchSpec) (mailbox.Mailbox, error) {
	if spec.maildir != "" {
		return mailbox.OpenMaildir(spec.maildir)
	}
	return mailbox.OpenMbox(spec.mbox)
}

// runFetch downloads in the crash-safe order: deliver, record the UIDL,
// make both durable, and only then DELE, committed by QUIT.
func runFetch(ctx context.Context, cf *connFlags, spec *fetchSpec, res *fetchResult) error {
	co, err := cf.common(ctx, "995", true)
	if err != nil {
		return err
	}
	res.Server = co.addr
	if co.auth == nil {
		return usageError{fmt.Errorf("fetch needs --user (and a secret) to log in")}
	}
	mb, err := openMailbox(spec)
	if err != nil {
		return err
	}
	defer mb.Close()
	res.Mailbox = mb.Path()
	res.StateFile = mailbox.StatePath(mb.Path())
	// The maildrop is the user's on the host whatever the port or TLS
	// mode used to reach it, so the account leaves the port out.
	host, _, _ := net.SplitHostPort(co.addr)
	account := co.auth.Username + "@" + host
	state, err := mailbox.OpenState(mb, account)
	if err != nil {
		return err
	}
	// Whatever happens, what was delivered is made durable and recorded
	// in the state file (Retain below does it on success).
	defer state.Close()
	c, err := dialWithin(ctx, cf, pop3.Dial, co.addr, co.pop3Options(cf))
	if err != nil {
		return err
	}
	defer c.Close()
	res.record(c, "mail travels")

	list, err := c.List(ctx)
	if err != nil {
		return err
	}
	res.OnServer = len(list)
	uids, err := c.Uidl(ctx)
	switch {
	case err != nil && mailsec.CodeOf(err) == mailsec.POPServer && (spec.all || spec.delete):
		uids = nil
	case err != nil && mailsec.CodeOf(err) == mailsec.POPServer:
		return mailsec.Errorf(mailsec.Unsupported, "UIDL", err,
			"the server cannot tell messages apart (no UIDL), so new mail cannot be told from old; use --all or --delete")
	case err != nil:
		return err
	}
	uidOf := make(map[int]string, len(uids))
	for _, u := range uids {
		uidOf[u.Num] = u.UID
	}

	var todo, seen []int
	var total int64
	sizeOf := make(map[int]int64, len(list))
	for _, m := range list {
		sizeOf[m.Num] = m.Size
		if uid := uidOf[m.Num]; !spec.all && uid != "" && state.Seen(uid) {
			seen = append(seen, m.Num)
			continue
		}
		if spec.limit > 0 && len(todo) == spec.limit {
			continue
		}
		todo = append(todo, m.Num)
		total += m.Size
	}
	res.Skipped = len(seen)

	bar := newProgress(os.Stderr, len(todo), total)
	dv := newDeliverer(mb, state, account)
	err = c.RetrEach(ctx, todo, func(num int, body io.Reader, rerr error) error {
		if rerr != nil {
			// The server refused this one message (gone, or locked); it
			// stays on the server and the others go on.
			res.Refused++
			fmt.Fprintf(os.Stderr, "mailsec: message %d: %s\n", num, mailsec.Printable(rerr.Error()))
			return nil
		}
		if err := dv.deliver(num, uidOf[num], bar.reader(&sizeCap{r: body, num: num, listed: sizeOf[num], left: maxSize(sizeOf[num])})); err != nil {
			return err
		}
		bar.done()
		return nil
	})
	// Messages downloaded whole are committed even when a later one broke
	// off: they are complete, and each is recorded on its own.
	if ferr := dv.finish(); err == nil {
		err = ferr
	}
	bar.finish()
	fetched := dv.fetched
	res.Fetched, res.Bytes = len(fetched), dv.bytes
	if err != nil {
		return err
	}

	var dele []int
	if spec.delete {
		// Messages recorded in an earlier run but not deleted then (that
		// run ended early) are safely stored too.
		dele = append(append(dele, seen...), fetched...)
		if err := c.DeleEach(ctx, dele); err != nil {
			return err
		}
		step("deleted", 0)
	}
	if err := c.Quit(ctx); err != nil {
		return err
	}
	step("quit", 0)
	res.Deleted = len(dele)
	if uids != nil {
		gone := make(map[string]bool, len(dele))
		for _, n := range dele {
			gone[uidOf[n]] = true
		}
		onServer := make(map[string]bool, len(uids))
		for _, u := range uids {
			onServer[u.UID] = true
		}
		// Forget what the server no longer has, so the state stays as
		// small as the maildrop.
		return state.Retain(func(uid string) bool { return onServer[uid] && !gone[uid] })
	}
	return state.Close()
}

// maxSize is the most a message may run to against the size LIST gave it:
// RFC 1939 section 11 makes that the exact size with CRLF line ends, but
// some servers count a stored LF as one octet, so up to twice as much (a
// message of empty lines) plus some slack is taken. Beyond that the server
// is not describing the message it sends, and an endless body would fill
// the disk.
func maxSize(listed int64) int64 { return 2*listed + 64<<10 }

// sizeCap fails a message body that runs past left octets; a body that
// ends exactly there is whole.
type sizeCap struct {
	r      io.Reader
	num    int
	listed int64
	left   int64
}

func (c *sizeCap) Read(p []byte) (int, error) {
	if c.left == 0 {
		var one [1]byte
		if n, err := c.r.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, mailsec.Errorf(mailsec.Protocol, "RETR", nil,
			"message %d runs past %d octets, though LIST gave it %d: refused, nothing kept", c.num, maxSize(c.listed), c.listed)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	return n, err
}

// deliverer stores downloaded messages in the crash-safe order: durable in
// the mailbox, then recorded in the state. With a Maildir the download
// goroutine only reads each message (into memory when small, into tmp/
// when large); a pool of committers writes and flushes it (fsync), renames
// it into new/ under a name that carries its UIDL and appends the UIDL to
// the journal, while the next messages download. Many flushes in flight share the file system's journal
// commits, which is what makes one fsync per message affordable. Order
// does not matter: each file name proves its own delivery, and state.Sync
// makes them all durable before anything irreversible.
type deliverer struct {
	mb      mailbox.Mailbox
	md      *mailbox.Maildir
	state   *mailbox.State
	account string
	jobs    chan delivered
	wg      sync.WaitGroup
	mu      sync.Mutex // guards state and the fields below
	err     error
	fetched []int
	bytes   int64
}

// delivered is one downloaded message on its way to being recorded.
type delivered struct {
	num    int
	uid    string
	staged *mailbox.Staged
	size   int64
}

// committers is how many messages are flushed at once, and how many more
// may wait for a committer before the download waits. Measured on ext4:
// writing and flushing 1,000 files of 64 KiB took 0.6 to 2.1 s one at a
// time and 0.4 to 0.5 s sixteen at a time; 32 or 64 did no better, and with
// bench/pop3fetch 16 and 32 were the same. Each message in flight holds at
// most 192 KiB (mailbox.Maildir.Stage), so this bounds memory too.
const committers = 16

// crashHook, when set, is called at each step of a delivery with the
// message number (0 for the steps of a whole run). The crash tests set it
// to kill the process there; it is nil otherwise.
var crashHook func(step string, num int)

func step(name string, num int) {
	if crashHook != nil {
		crashHook(name, num)
	}
}

func newDeliverer(mb mailbox.Mailbox, state *mailbox.State, account string) *deliverer {
	d := &deliverer{mb: mb, state: state, account: account}
	if md, ok := mb.(*mailbox.Maildir); ok {
		d.md = md
		d.jobs = make(chan delivered, committers)
		for range committers {
			d.wg.Add(1)
			go d.commitLoop()
		}
	}
	return d
}

// deliver stores message num read from r. An error may be an earlier
// message's.
func (d *deliverer) deliver(num int, uid string, r io.Reader) error {
	if err := d.failed(); err != nil {
		return err
	}
	o := mailbox.Origin{Account: d.account, UID: uid}
	if d.md == nil {
		n, err := d.mb.Deliver(r, o)
		if err != nil {
			return err
		}
		step("delivered", num)
		return d.record(delivered{num: num, uid: uid, size: n})
	}
	st, err := d.md.Stage(r, o)
	if err != nil {
		return err
	}
	d.jobs <- delivered{num: num, uid: uid, staged: st, size: st.Size}
	return nil
}

func (d *deliverer) commitLoop() {
	defer d.wg.Done()
	for j := range d.jobs {
		if d.failed() != nil {
			j.staged.Abort()
			continue
		}
		err := j.staged.Sync()
		if err == nil {
			step("staged", j.num)
			err = j.staged.Commit()
		}
		if err == nil {
			step("renamed", j.num)
			err = d.record(j)
		}
		if err != nil {
			d.mu.Lock()
			if d.err == nil {
				d.err = err
			}
			d.mu.Unlock()
		}
	}
}

// record notes the delivered message in the state.
func (d *deliverer) record(j delivered) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if j.uid != "" {
		if err := d.state.Add(j.uid); err != nil {
			return err
		}
	}
	d.fetched = append(d.fetched, j.num)
	d.bytes += j.size
	step("recorded", j.num)
	return nil
}

func (d *deliverer) failed() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.err
}

// finish waits for the commits in flight, makes every delivery and record
// durable, and returns the first error. fetched is sorted then.
func (d *deliverer) finish() error {
	if d.jobs != nil {
		close(d.jobs)
		d.wg.Wait()
	}
	slices.Sort(d.fetched)
	err := d.failed()
	if serr := d.state.Sync(); err == nil {
		err = serr
	}
	if err == nil {
		step("synced", 0)
	}
	return err
}

// progress draws a progress bar on stderr, only when it is a terminal: a
// count and bytes, redrawn at most ten times a second.
type progress struct {
	w          io.Writer
	on         bool
	color      bool
	n, total   int
	bytes, max int64
	last       time.Time
}

func newProgress(w *os.File, total int, size int64) *progress {
	on := total > 0 && term.IsTerminal(int(w.Fd()))
	color := os.Getenv("NO_COLOR") == "" && os.Getenv("TERM") != "dumb"
	return &progress{w: w, on: on, color: color, total: total, max: size}
}

// reader counts the octets of one message as they arrive.
func (p *progress) reader(r io.Reader) io.Reader {
	if !p.on {
		return r
	}
	return &countingReader{r: r, p: p}
}

type countingReader struct {
	r io.Reader
	p *progress
}

func (c *countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.bytes += int64(n)
	c.p.draw(false)
	return n, err
}

func (p *progress) done() {
	p.n++
	p.draw(false)
}

func (p *progress) finish() {
	if p.on {
		p.draw(true)
		fmt.Fprintln(p.w)
	}
}

func (p *progress) draw(force bool) {
	if !p.on || (!force && time.Since(p.last) < 100*time.Millisecond) {
		return
	}
	p.last = time.Now()
	const width = 30
	frac := float64(p.n) / float64(p.total)
	if p.max > 0 {
		frac = min(float64(p.bytes)/float64(p.max), 1)
	}
	fill := int(frac * width)
	bar := strings.Repeat("#", fill) + strings.Repeat("-", width-fill)
	if p.color {
		bar = "\x1b[32m" + strings.Repeat("#", fill) + "\x1b[0m" + strings.Repeat("-", width-fill)
	}
	fmt.Fprintf(p.w, "\r[%s] %d/%d messages, %s/%s ", bar, p.n, p.total, humanBytes(p.bytes), humanBytes(p.max))
}

// humanBytes renders a size in binary units.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
