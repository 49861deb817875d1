// Package postgres is a queue.Queue in a PostgreSQL database, shared by
// several mailsec serve nodes: any node may accept a message and any node
// may deliver it.
//
// Tables (see migrations/): messages holds each entry's envelope and
// recipient state as JSON, its due time and its lease; bodies holds the
// body as bytea, removed with its entry (ON DELETE CASCADE); dest_slots
// holds the per-destination connection slots of Acquire;
// schema_migrations records which migrations were applied.
//
// Every time that decides something (created, next attempt, lease and
// slot expiry) is the database's now(), never a node's clock, so nodes
// whose clocks disagree still agree on what is due and whose lease ran
// out.
//
// Durability: Enqueue stores entry and body in one transaction and
// returns after COMMIT, which with synchronous_commit on (which Open
// sets for its sessions unless the DSN names a level) means the WAL is
// flushed. A message is acknowledged only once it is in the database.
//
// Leases are rows: Claim sets a fresh token, node name and expiry on the
// entries it takes (FOR UPDATE SKIP LOCKED, so that concurrent claimers
// on any node never take the same entry), and Record and Complete name
// the token in their WHERE clause, so a deliverer whose claim was
// replaced changes nothing and gets queue.ErrLeaseLost (fencing). As in
// the embedded queue, a lease that ran out still works until the entry
// is claimed again, retried or deleted: nobody else has touched it, and
// recording the delivery that was made saves making it twice.
//
// Bodies: see Options.MaxBodySize for the limit and Enqueue and Body for
// how they travel.
//
// Wake: each node LISTENs on a channel that Enqueue and Retry notify
// inside their transaction (PostgreSQL delivers it at commit), on a
// connection of its own that is re-established with back-off; and it
// ticks every Options.PollInterval as well, so that new mail starts
// within that time even when a notification was lost.
//
// Errors are *mailsec.Error with the queue's sentinels in Err, as in the
// embedded queue: queue.ErrNotFound with code Data, queue.ErrLeaseLost
// with Canceled, queue.ErrClosed with NotConnected. A failure of the
// database (down, restarting, unreachable) has code Config and is
// returned as soon as the driver sees it: callers such as the relay try
// again later, and the connection pool reconnects by itself.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/queue/internal/backend"
)

// Body size limits.
const (
	// DefaultMaxBodySize is the largest body Enqueue accepts unless
	// Options.MaxBodySize says otherwise.
	DefaultMaxBodySize = 256 << 20
	// MaxBodyLimit is the most Options.MaxBodySize may be. A bytea value
	// cannot exceed 1 GiB in PostgreSQL, and the COPY row that carries it
	// must fit the server's 1 GiB allocation limit too; the margin keeps
	// clear of both.
	MaxBodyLimit = 1<<30 - 1<<20
)

const (
	// DefaultPollInterval is Options.PollInterval unless set: mail
	// starts within a second even if a notification was lost.
	DefaultPollInterval = time.Second
	// DefaultSlotLease is Options.SlotLease unless set: long enough that
	// a busy database does not make a live holder lose its slot, short
	// enough that a dead node's slots come back soon.
	DefaultSlotLease = 30 * time.Second
)

// The NOTIFY channels: wakeChannel carries "an entry became due",
// slotChannel the destination of a released slot.
const (
	wakeChannel = "mailsec_queue"
	slotChannel = "mailsec_slots"
)

// Options tune Open; nil means the defaults.
type Options struct {
	// Logger receives migrations applied and connection trouble of the
	// notification listener; nil means slog.Default().
	Logger *slog.Logger
	// Node names this node in leases, slots and migrations (and in
	// application_name, for pg_stat_activity) so that an operator can
	// tell which node holds what; "" means hostname-pid.
	Node string
	// MaxBodySize is the largest body Enqueue accepts, in octets; larger
	// ones fail with a Data error and are not stored. 0 means
	// DefaultMaxBodySize; more than MaxBodyLimit is refused by Open.
	MaxBodySize int64
	// PollInterval is how often Wake ticks even without a notification:
	// the bound on how long due mail waits should a NOTIFY be lost (the
	// listening connection down, say). 0 means DefaultPollInterval;
	// negative turns the ticking off.
	PollInterval time.Duration
	// SlotLease is how long a slot taken by Acquire outlives a node that
	// stopped renewing it (crashed or cut off); the holder renews it
	// every third of that. 0 means DefaultSlotLease.
	SlotLease time.Duration
	// SpoolDir is where Enqueue spools bodies larger than a megabyte
	// before sending them; "" means os.TempDir(). Nothing in it needs to
	// survive a crash: a spooled body is not yet acknowledged.
	SpoolDir string
}

// Queue is a queue.Queue in PostgreSQL. Open makes one; several, in one
// process or on several machines, may share a database.
type Queue struct {
	pool      *pgxpool.Pool
	log       *slog.Logger
	node      string
	maxBody   int64
	slotLease time.Duration
	spoolDir  string
	ids       queue.IDSource
	wake      chan struct{}
	// listens counts the times the listener started listening, so that
	// a test can tell it came back after the database restarted.
	listens atomic.Int64

	// ctx ends when Close begins; every call's context is tied to it so
	// that Close interrupts the calls in progress rather than waiting for
	// a database that may not answer.
	ctx    context.Context
	cancel context.CancelFunc
	calls  sync.WaitGroup // calls in progress
	bg     sync.WaitGroup // listener, poller, slot renewers

	mu     sync.Mutex
	closed bool
	// freed has a channel per destination with a waiting Acquire,
	// closed when a slot of it may have come free.
	freed map[string]chan struct{}
}

// Open connects to the database named by dsn (a PostgreSQL URL or
// keyword/value string, as libpq takes), brings its schema up to date
// and starts listening for other nodes' notifications.
//
// Keep the password out of the DSN: a DSN is a command-line argument or
// configuration value, visible to other users in ps and in logs. Leave
// it out and set the PGPASSWORD environment variable, or better point
// PGPASSFILE at a file of mode 0600 (default ~/.pgpass); the driver reads
// both. The other PG* variables (PGHOST, PGSSLMODE, ...) apply too.
//
// The schema migrations run in one transaction under an advisory lock, so
// that nodes starting together apply each exactly once; a database whose
// schema is newer than this program knows is refused.
func Open(ctx context.Context, dsn string, opts *Options) (*Queue, error) {
	const opname = "queue open"
	if opts == nil {
		opts = &Options{}
	}
	q := &Queue{
		log:       opts.Logger,
		node:      opts.Node,
		maxBody:   opts.MaxBodySize,
		slotLease: opts.SlotLease,
		spoolDir:  opts.SpoolDir,
		wake:      make(chan struct{}, 1),
		freed:     map[string]chan struct{}{},
	}
	if q.log == nil {
		q.log = slog.Default()
	}
	if q.node == "" {
		host, _ := os.Hostname()
		q.node = host + "-" + strconv.Itoa(os.Getpid())
	}
	switch {
	case q.maxBody == 0:
		q.maxBody = DefaultMaxBodySize
	case q.maxBody < 0 || q.maxBody > MaxBodyLimit:
		return nil, mailsec.Errorf(mailsec.Config, opname, nil,
			"MaxBodySize %d is outside 1..%d (PostgreSQL stores at most 1 GiB per value)", q.maxBody, MaxBodyLimit)
	}
	if q.slotLease == 0 {
		q.slotLease = DefaultSlotLease
	}
	poll := opts.PollInterval
	if poll == 0 {
		poll = DefaultPollInterval
	}
	q.ctx, q.cancel = context.WithCancel(context.Background())
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		q.cancel()
		return nil, mailsec.Errorf(mailsec.Config, opname, err, "invalid queue database DSN")
	}
	// Without a timeout a database host that drops packets would hold
	// each operation for the kernel's connect timeout, minutes.
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	}
	// The 250 waits for COMMIT, which must therefore mean the WAL is on
	// disk whatever the server's default; a DSN may still ask for more
	// (remote_apply, with a standby).
	if _, ok := cfg.ConnConfig.RuntimeParams["synchronous_commit"]; !ok {
		cfg.ConnConfig.RuntimeParams["synchronous_commit"] = "on"
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "mailsec " + q.node
	}
	q.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		q.cancel()
		return nil, mailsec.Errorf(mailsec.Config, opname, err, "cannot set up the queue database pool")
	}
	if err := q.migrate(ctx, len(migrations)); err != nil {
		q.cancel()
		q.pool.Close()
		return nil, err
	}
	q.bg.Add(1)
	go q.listen()
	if poll > 0 {
		q.bg.Add(1)
		go q.tick(poll)
	}
	return q, nil
}

// enter fails once Close has begun; otherwise it returns ctx tied to the
// queue's life and the exit function the call must run when done.
func (q *Queue) enter(ctx context.Context, opname string) (context.Context, func(), error) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil, nil, closedErr(opname)
	}
	q.calls.Add(1)
	q.mu.Unlock()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(q.ctx, cancel)
	return ctx, func() {
		stop()
		cancel()
		q.calls.Done()
	}, nil
}

// Close ends the calls in progress (what they had not committed is not
// stored), stops the listener and closes the connections. Slots still
// held are left to expire, as a crashed node's would.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return closedErr("queue close")
	}
	q.closed = true
	q.mu.Unlock()
	q.cancel()
	q.calls.Wait()
	q.bg.Wait()
	q.pool.Close()
	return nil
}

func closedErr(opname string) error {
	return mailsec.Errorf(mailsec.NotConnected, opname, queue.ErrClosed, "the queue is closed")
}

// fail turns what the driver returned into a *mailsec.Error.
func (q *Queue) fail(opname string, err error) error {
	var me *mailsec.Error
	switch {
	case errors.As(err, &me):
		return err
	case q.ctx.Err() != nil:
		return closedErr(opname)
	case errors.Is(err, context.DeadlineExceeded):
		return mailsec.Errorf(mailsec.Timeout, opname, err, "queue database operation timed out")
	case errors.Is(err, context.Canceled):
		return mailsec.Errorf(mailsec.Canceled, opname, err, "queue database operation canceled")
	}
	return mailsec.Errorf(mailsec.Config, opname, err, "queue database failure")
}

// Wake implements queue.Queue.
func (q *Queue) Wake() <-chan struct{} { return q.wake }

func (q *Queue) notify() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *Queue) tick(every time.Duration) {
	defer q.bg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-q.ctx.Done():
			return
		case <-t.C:
			q.notify()
		}
	}
}

// Back-off of the listener's reconnects.
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// listen keeps a connection LISTENing, reconnecting with back-off, for
// as long as the queue is open.
func (q *Queue) listen() {
	defer q.bg.Done()
	backoff := minBackoff
	for {
		listened, err := q.listenOnce()
		if q.ctx.Err() != nil {
			return
		}
		if listened {
			// What broke the listening connection (the server restarting,
			// the network) most likely broke the idle ones in the pool
			// too: drop them now rather than fail a call on each.
			q.pool.Reset()
			backoff = minBackoff
		}
		q.log.Warn("queue notifications interrupted; reconnecting", "node", q.node, "err", err, "retry_in", backoff)
		select {
		case <-q.ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenOnce listens on one connection until it fails, and reports
// whether it got as far as listening.
func (q *Queue) listenOnce() (bool, error) {
	conn, err := pgx.ConnectConfig(q.ctx, q.pool.Config().ConnConfig)
	if err != nil {
		return false, err
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		conn.Close(ctx)
	}()
	if _, err := conn.Exec(q.ctx, "LISTEN "+wakeChannel+"; LISTEN "+slotChannel); err != nil {
		return false, err
	}
	q.listens.Add(1)
	// Whatever was notified while nobody listened is lost: look again.
	q.notify()
	q.slotsFreed("")
	for {
		n, err := conn.WaitForNotification(q.ctx)
		if err != nil {
			return true, err
		}
		switch n.Channel {
		case wakeChannel:
			q.notify()
		case slotChannel:
			q.slotsFreed(n.Payload)
		}
	}
}

// Enqueue implements queue.Queue.
//
// The body is first read whole into a spool (memory up to a megabyte,
// then an unlinked file in Options.SpoolDir), and only then is a
// connection taken: the submitter's pace must not hold a pooled
// connection and an open transaction, or a few slow SMTP clients would
// starve the deliverers of connections. From the spool the body goes to
// the server with COPY in binary format, which streams it in 64 KiB
// messages without holding it in memory; a plain INSERT would need it
// whole in memory as a bind parameter, since the extended protocol has
// no streaming parameters. Binary COPY needs the field's length before
// its octets, which the spool knows.
func (q *Queue) Enqueue(ctx context.Context, env *queue.Envelope, body io.Reader) (queue.ID, error) {
	const opname = "queue enqueue"
	stored, err := backend.Envelope(ctx, env)
	if err != nil {
		return "", err
	}
	// Checked before the body is read, as the call is not counted until
	// after: Close must not wait for a slow submitter.
	if q.isClosed() {
		return "", closedErr(opname)
	}
	sp, err := q.spool(body)
	if err != nil {
		return "", err
	}
	defer sp.close()
	js, err := json.Marshal(&stored)
	if err != nil {
		return "", mailsec.Errorf(mailsec.Data, opname, err, "cannot encode the envelope")
	}
	ctx, exit, err := q.enter(ctx, opname)
	if err != nil {
		return "", err
	}
	defer exit()
	id, _ := q.ids.Next()
	err = pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		b := &pgx.Batch{}
		b.Queue(`INSERT INTO messages (id, envelope, size, pending) VALUES ($1, $2, $3, $4)`,
			string(id), js, sp.size, len(stored.Recipients))
		b.Queue(`SELECT pg_notify($1, '')`, wakeChannel)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return err
		}
		_, err := tx.Conn().PgConn().CopyFrom(ctx, sp.copyData(id), `COPY bodies (id, body) FROM STDIN (FORMAT binary)`)
		return err
	})
	if err != nil {
		return "", q.fail(opname, err)
	}
	q.notify()
	return id, nil
}

func (q *Queue) isClosed() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed
}

// entryColumns are what scanEntry reads first, leaseColumns what Claim
// adds.
const (
	entryColumns = `id, envelope, size, created, attempts, next_attempt, delay_notified`
	leaseColumns = `, lease_token, lease_expires`
	// holderColumns say who holds a live lease, for Get and List.
	holderColumns = `, CASE WHEN lease_expires > now() THEN lease_node END, CASE WHEN lease_expires > now() THEN lease_expires END`
)

// scanEntry reads an entry followed by leaseColumns, as Claim returns
// it (leased), or by holderColumns, as Get and List do.
func scanEntry(row pgx.Row, leased bool) (*queue.Entry, error) {
	var (
		e     queue.Entry
		id    string
		js    []byte
		who   *string    // lease_token or lease_node
		until *time.Time // lease_expires
	)
	if err := row.Scan(&id, &js, &e.Size, &e.Created, &e.Attempts, &e.NextAttempt, &e.DelayNotified, &who, &until); err != nil {
		return nil, err
	}
	e.ID = queue.ID(id)
	if err := json.Unmarshal(js, &e.Envelope); err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "queue database", err, "entry %s is corrupt", id)
	}
	switch {
	case who == nil || until == nil:
	case leased:
		e.Lease = &queue.Lease{ID: e.ID, Token: *who, Expires: *until}
	default:
		e.HeldBy = &queue.Holder{Node: *who, Until: *until}
	}
	return &e, nil
}

// query runs sql, which selects entries as scanEntry reads them.
func (q *Queue) query(ctx context.Context, leased bool, sql string, args ...any) ([]*queue.Entry, error) {
	rows, err := q.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*queue.Entry
	for rows.Next() {
		e, err := scanEntry(rows, leased)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// Get implements queue.Queue.
func (q *Queue) Get(ctx context.Context, id queue.ID) (*queue.Entry, error) {
	const opname = "queue get"
	ctx, exit, err := q.enter(ctx, opname)
	if err != nil {
		return nil, err
	}
	defer exit()
	if !queue.ValidID(string(id)) {
		return nil, backend.NotFound(opname, id)
	}
	e, err := scanEntry(q.pool.QueryRow(ctx, `SELECT `+entryColumns+holderColumns+` FROM messages WHERE id = $1`, string(id)), false)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, backend.NotFound(opname, id)
	}
	if err != nil {
		return nil, q.fail(opname, err)
	}
	return e, nil
}

// List implements queue.Queue. Oldest is by the database's clock, the
// ID only breaking ties.
func (q *Queue) List(ctx context.Context) ([]*queue.Entry, error) {
	const opname = "queue list"
	ctx, exit, err := q.enter(ctx, opname)
	if err != nil {
		return nil, err
	}
	defer exit()
	es, err := q.query(ctx, false, `SELECT `+entryColumns+holderColumns+` FROM messages ORDER BY created, id`)
	if err != nil {
		return nil, q.fail(opname, err)
	}
	return es, nil
}

// Stats implements queue.Queue, counting in the database.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	const opname = "queue stats"
	var s queue.Stats
	ctx, exit, err := q.enter(ctx, opname)
	if err != nil {
		return s, err
	}
	defer exit()
	var oldest *time.Time
	err = q.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(pending), 0), coalesce(sum(size), 0),
		count(*) FILTER (WHERE attempts > 0), min(created) FROM messages`).
		Scan(&s.Messages, &s.Recipients, &s.Octets, &s.Deferred, &oldest)
	if err != nil {
		return queue.Stats{}, q.fail(opname, err)
	}
	if oldest != nil {
		s.Oldest = *oldest
	}
	return s, nil
}

// Claim implements queue.Queue. SKIP LOCKED lets claimers on every node
// run at once, each passing over the rows another is taking.
func (q *Queue) Claim(ctx context.Context, max int, lease time.Duration) ([]*queue.Entry, error) {
	const opname = "queue claim"
	ctx, exit, err := q.enter(ctx, opname)
	if err != nil {
		return nil, err
	}
	defer exit()
	if max <= 0 {
		return nil, nil
	}
	es, err := q.query(ctx, true, `WITH c AS (
		UPDATE messages SET lease_token = $1, lease_node = $2,
			lease_expires = now() + $3::bigint * interval '1 microsecond'
		WHERE id IN (
			SELECT id FROM messages
			WHERE next_attempt <= now() AND (lease_expires IS NULL OR lease_expires < now())
			ORDER BY next_attempt, id LIMIT $4
			FOR UPDATE SKIP LOCKED)
		RETURNING `+entryColumns+leaseColumns+`)
	SELECT * FROM c ORDER BY next_attempt, id`, backend.NewToken(), q.node, lease.Microseconds(), max)
	if err != nil {
		return nil, q.fail(opname, err)
	}
	return es, nil
}

// Record implements queue.Queue. The envelope is read without a lock:
// every change to it also clears the lease token, so the UPDATE's check
// of the token fails if anything changed it in between.
func (q *Queue) Record(ctx context.Context, l *queue.Lease, a *queue.Attempt) error {
	const opname = "queue record"
	if l == nil || a == nil {
		return mailsec.Errorf(mailsec.Data, opname, nil, "no lease or no attempt")
	}
	ctx, exit, err := q.enter(ctx, opname)
	if err != nil {
		return err
	}
	defer exit()
	if !queue.ValidID(string(l.ID)) {
		return backend.LeaseLost(opname, l.ID)
	}
	var js []byte
	err = q.pool.QueryRow(ctx, `SELECT envelope FROM messages WHERE id = $1 AND lease_token = $2`,
		string(l.ID), l.Token).Scan(&js)
	if errors.Is(err, pgx.ErrNoRows) {
		return backend.LeaseLost(opname, l.ID)
	}
	if err != nil {
		return q.fail(opname, err)
	}
	var e queue.Entry
	if err := json.Unmarshal(js, &e.Envelope); err != nil {
		return mailsec.Errorf(mailsec.Config, opname, err, "entry %s is corrupt", l.ID)
	}
	if err := backend.Apply(opname, l.ID, &e.Envelope, a); err != nil {
		return err
	}
	pending := len(e.Pending())
	if js, err = json.Marshal(&e.Envelope); err != nil {
		return mailsec.Errorf(mailsec.Data, opname, err, "cannot encode the envelope")
	}
	var next *time.Time // NULL: due now, by the database's clock
	if !a.NextAttempt.IsZero() {
		next = &a.NextAttempt
	}
	tag, err := q.pool.Exec(ctx, `UPDATE messages SET envelope = $3, pending = $4, attempts = attempts + 1,
		next_attempt = coalesce($5, now()), delay_notified = delay_notified OR $6,
		lease_token = NULL, lease_node = NULL, lease_expires = NULL
		WHERE id = $1 AND lease_token = $2`,
		string(l.ID), l.Token, js, pending, next, a.DelayNotified)
	if err != nil {
		return q.fail(opname, err)
	}
	if tag.RowsAffected() == 0 {
		return backend.LeaseLost(opname, l.ID)
	}
	return nil
}

// Complete implements queue.Queue; the body goes with the entry (ON
// DELETE CASCADE).
func (q *Queue) Complete(ctx context.Context, l *queue.Lease) error {
	const opname = "queue complete"
	if l == nil {
		return mailsec.Errorf(mailsec.Data, opname, nil, "no lease")
	}
	ctx, exit, err := q.enter(ctx, opname)
	if err != nil {
		return err
	}
	defer exit()
	tag, err := q.pool.Exec(ctx, `DELETE FROM messages WHERE id = $1 AND lease_token = $2`, string(l.ID), l.Token)
	if err != nil {
		return q.fail(opname, err)
	}
	if tag.RowsAffected() == 0 {
		return backend.LeaseLost(opname, l.ID)
	}
	return nil
}

// Retry implements queue.Queue. The UPDATE and the NOTIFY go in one
// batch, which PostgreSQL runs as one implicit transaction: the other
// nodes hear of it once it is committed.
func (q *Queue) Retry(ctx context.Context, id queue.ID) error {
	const opname = "queue retry"
	ctx, exit, err := q.enter(ctx, opname)
	if err != nil {
		return err
	}
	defer exit()
	if !queue.ValidID(string(id)) {
		return backend.NotFound(opname, id)
	}
	b := &pgx.Batch{}
	var n int64
	b.Queue(`UPDATE messages SET next_attempt = least(next_attempt, now()),
		lease_token = NULL, lease_node = NULL, lease_expires = NULL WHERE id = $1`, string(id)).
		Exec(func(tag pgconn.CommandTag) error {
			n = tag.RowsAffected()
			return nil
		})
	b.Queue(`SELECT pg_notify($1, '')`, wakeChannel)
	if err := q.pool.SendBatch(ctx, b).Close(); err != nil {
		return q.fail(opname, err)
	}
	if n == 0 {
		return backend.NotFound(opname, id)
	}
	q.notify()
	return nil
}

// Delete implements queue.Queue.
func (q *Queue) Delete(ctx context.Context, id queue.ID) error {
	const opname = "queue delete"
	ctx, exit, err := q.enter(ctx, opname)
	if err != nil {
		return err
	}
	defer exit()
	if !queue.ValidID(string(id)) {
		return backend.NotFound(opname, id)
	}
	tag, err := q.pool.Exec(ctx, `DELETE FROM messages WHERE id = $1`, string(id))
	if err != nil {
		return q.fail(opname, err)
	}
	if tag.RowsAffected() == 0 {
		return backend.NotFound(opname, id)
	}
	return nil
}

var _ queue.Queue = (*Queue)(nil)
