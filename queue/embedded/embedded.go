// Package embedded is the default queue.Queue: zero setup, one directory
// on local disk, for a single mailsec process.
//
// Layout under the directory:
//
//	index.db   bbolt: each entry's envelope and per-recipient state as
//	           JSON, and a due-time index
//	msg/<id>   the body of each entry, as submitted
//	tmp/<id>   bodies being written, not yet part of the queue
//
// Why this split: bodies are large and written once, so they go to plain
// files that are streamed from the submitter and to the deliverer without
// ever being held in memory or copied through the database; the state
// that changes with every attempt is small and must change atomically
// with its due time, which is what a transactional B+tree gives. bbolt
// is pure Go, needs no server and fsyncs on commit, and its exclusive
// file lock makes the directory usable by one process only, which is what
// lets leases live in memory (below).
//
// Durability: Enqueue writes the body to tmp/, fsyncs it, renames it into
// msg/ and fsyncs msg/ before the bbolt transaction that adds the entry
// commits; only then does it return. So an acknowledged message always
// has both, and a crash leaves at worst a body without an entry (in tmp/,
// or in msg/ if the crash came between rename and commit): such a message
// was never acknowledged, and Open removes it. Complete and Delete remove
// the body after the commit, for the same reason.
//
// Group commit: fsync is what an Enqueue costs, so concurrent calls share
// them. Each caller writes and fsyncs its own body in parallel with the
// others; then a single committer goroutine takes every operation waiting
// for it, renames the new bodies, fsyncs msg/ once and applies them all in
// one bbolt transaction (two fdatasyncs). Record, Complete, Retry and
// Delete go through the same committer, so deliveries finishing together
// share a commit too, and all writes are applied in one order. No delay
// is added to gather a group: operations that arrive while a commit runs
// form the next one. Syncs counts the fsyncs so the cost per message can
// be measured.
//
// Leases are kept in memory only. The process holding bbolt's lock is the
// queue's only user, so after a restart every old claim is void and
// everything due is claimable at once, which is exactly what a lease
// running out would give; keeping them out of the index saves a commit
// per Claim. Claim walks the due-time index (next attempt, then ID) from
// the start, so it never scans entries that are not due. A lease that has
// run out still works until the entry is claimed again, retried or
// deleted: until then nobody else has touched the entry, and recording
// the delivery that was made saves making it twice.
//
// IDs come from queue.IDSource: creation time first, in an alphabet that
// keeps ASCII order, so the index lists entries oldest first by key alone.
//
// Errors are *mailsec.Error. The queue's sentinels are in Err so that
// errors.Is works: queue.ErrNotFound with code Data, queue.ErrLeaseLost
// with Canceled (the caller's work is discarded), queue.ErrClosed with
// NotConnected; failures of the disk have code Config, as in package
// store.
package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/queue/internal/backend"
	"github.com/mailsec/mailsec/store"
)

// Options tune Open; nil means the defaults.
type Options struct {
	// Logger receives what Open finds wrong with the directory and
	// repairs; nil means slog.Default().
	Logger *slog.Logger
}

// Queue is a queue.Queue in a local directory. Open makes one.
type Queue struct {
	dir   string
	db    *bolt.DB
	log   *slog.Logger
	wake  chan struct{}
	ops   chan *op
	done  chan struct{} // closed when the committer has exited
	syncs atomic.Uint64
	ids   queue.IDSource

	// closeMu is held shared by every call for as long as it uses ops or
	// db, so that Close can wait for them before closing both.
	closeMu sync.RWMutex
	closed  bool

	// mu guards the in-memory claim state. Claim holds it across its read
	// of the index so that no commit can end a lease in between.
	mu     sync.Mutex
	leases map[queue.ID]*lease
	// busy counts, per entry, the operations handed to the committer and
	// not yet finished; such an entry is not claimable, because the index
	// Claim reads may not show their effect yet.
	busy map[queue.ID]int
	// missing holds entries found without a body by Open.
	missing map[queue.ID]bool
}

type lease struct {
	token   string
	expires time.Time
	// ending is set once a Record or Complete under the lease, or a
	// Retry or Delete fencing it, has been accepted for commit, so that
	// no later operation can use the lease.
	ending bool
}

var (
	bucketEntries = []byte("entries")
	bucketDue     = []byte("due")
)

// Open opens (creating it if needed) the queue in dir. Only one process
// may have a directory open; a second one fails after a second with a
// Config error instead of waiting.
func Open(dir string, opts *Options) (*Queue, error) {
	if opts == nil {
		opts = &Options{}
	}
	q := &Queue{
		dir:     dir,
		log:     opts.Logger,
		wake:    make(chan struct{}, 1),
		ops:     make(chan *op, 256),
		done:    make(chan struct{}),
		leases:  map[queue.ID]*lease{},
		busy:    map[queue.ID]int{},
		missing: map[queue.ID]bool{},
	}
	if q.log == nil {
		q.log = slog.Default()
	}
	for _, d := range []string{dir, q.path("tmp"), q.path("msg")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, mailsec.Errorf(mailsec.Config, "queue open", err, "cannot create queue directory %s", d)
		}
	}
	db, err := bolt.Open(q.path("index.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, mailsec.Errorf(mailsec.Config, "queue open", err,
			"another process (mailsec serve?) holds the queue in %s", dir)
	}
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "queue open", err, "cannot open queue index %s", q.path("index.db"))
	}
	q.db = db
	if err := q.recover(); err != nil {
		db.Close()
		return nil, err
	}
	go q.commitLoop()
	return q, nil
}

func (q *Queue) path(elem ...string) string {
	return filepath.Join(append([]string{q.dir}, elem...)...)
}

// recover brings the directory back to the state the index describes
// after a crash: bodies that no entry names were never acknowledged.
func (q *Queue) recover() error {
	fail := func(err error, what string) error {
		return mailsec.Errorf(mailsec.Config, "queue open", err, "%s in %s", what, q.dir)
	}
	if err := q.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketEntries, bucketDue} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fail(err, "cannot initialise the index")
	}
	tmp, err := os.ReadDir(q.path("tmp"))
	if err != nil {
		return fail(err, "cannot read tmp/")
	}
	for _, f := range tmp {
		if err := os.Remove(q.path("tmp", f.Name())); err != nil {
			return fail(err, "cannot remove a partial body")
		}
	}
	bodies, err := os.ReadDir(q.path("msg"))
	if err != nil {
		return fail(err, "cannot read msg/")
	}
	have := make(map[queue.ID]bool, len(bodies))
	for _, f := range bodies {
		have[queue.ID(f.Name())] = true
	}
	return q.db.View(func(tx *bolt.Tx) error {
		err := tx.Bucket(bucketEntries).ForEach(func(k, _ []byte) error {
			id := queue.ID(k)
			if have[id] {
				delete(have, id)
				return nil
			}
			q.missing[id] = true
			q.log.Error("queue entry has no body; it will not be delivered", "id", id, "dir", q.dir)
			return nil
		})
		if err != nil {
			return fail(err, "cannot read the index")
		}
		for id := range have {
			if err := os.Remove(q.path("msg", string(id))); err != nil {
				return fail(err, "cannot remove an unacknowledged body")
			}
			q.log.Info("removed the body of a message never acknowledged", "id", id, "dir", q.dir)
		}
		return nil
	})
}

// enter fails once Close has begun; otherwise it keeps Close waiting
// until exit.
func (q *Queue) enter(opname string) error {
	q.closeMu.RLock()
	if q.closed {
		q.closeMu.RUnlock()
		return mailsec.Errorf(mailsec.NotConnected, opname, queue.ErrClosed, "queue %s is closed", q.dir)
	}
	return nil
}

func (q *Queue) exit() { q.closeMu.RUnlock() }

// Close waits for the calls in progress, then releases the index and its
// lock.
func (q *Queue) Close() error {
	q.closeMu.Lock()
	defer q.closeMu.Unlock()
	if q.closed {
		return mailsec.Errorf(mailsec.NotConnected, "queue close", queue.ErrClosed, "queue %s is closed", q.dir)
	}
	q.closed = true
	close(q.ops)
	<-q.done
	if err := q.db.Close(); err != nil {
		return mailsec.Errorf(mailsec.Config, "queue close", err, "cannot close queue index")
	}
	return nil
}

// Syncs returns how many fsyncs the queue has asked for since Open: one
// per body file, one per fsync of msg/, and two per index commit (bbolt
// syncs the pages, then the meta page; the rare sync when it grows its
// file is not counted).
func (q *Queue) Syncs() uint64 { return q.syncs.Load() }

// Wake implements queue.Queue.
func (q *Queue) Wake() <-chan struct{} { return q.wake }

func (q *Queue) notify() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// Enqueue implements queue.Queue.
func (q *Queue) Enqueue(ctx context.Context, env *queue.Envelope, body io.Reader) (queue.ID, error) {
	const opname = "queue enqueue"
	stored, err := backend.Envelope(ctx, env)
	if err != nil {
		return "", err
	}
	// Checked before the body is read, and again before the commit:
	// Close must not wait for a slow submitter.
	if err := q.enter(opname); err != nil {
		return "", err
	}
	q.exit()
	id, created := q.ids.Next()
	tmp := q.path("tmp", string(id))
	size, err := q.writeBody(tmp, body)
	if err != nil {
		os.Remove(tmp)
		return "", err
	}
	e := &queue.Entry{ID: id, Envelope: stored, Size: size, Created: created, NextAttempt: created}
	if err := q.enter(opname); err != nil {
		os.Remove(tmp)
		return "", err
	}
	defer q.exit()
	if err := q.submit(&op{kind: opEnqueue, id: id, entry: e}); err != nil {
		return "", err
	}
	return id, nil
}

func (q *Queue) writeBody(name string, body io.Reader) (int64, error) {
	const opname = "queue enqueue"
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return 0, mailsec.Errorf(mailsec.Config, opname, err, "cannot create body file")
	}
	defer f.Close()
	size, err := backend.Copy(f, body)
	if err != nil {
		var we *backend.WriteError
		if errors.As(err, &we) {
			return 0, mailsec.Errorf(mailsec.Config, opname, we.Err, "cannot write body file")
		}
		return 0, mailsec.Errorf(mailsec.Data, opname, err, "cannot read the message body")
	}
	q.syncs.Add(1)
	if err := f.Sync(); err != nil {
		return 0, mailsec.Errorf(mailsec.Config, opname, err, "cannot sync body file")
	}
	if err := f.Close(); err != nil {
		return 0, mailsec.Errorf(mailsec.Config, opname, err, "cannot write body file")
	}
	return size, nil
}

// Body implements queue.Queue.
func (q *Queue) Body(ctx context.Context, id queue.ID) (io.ReadCloser, error) {
	const opname = "queue body"
	if err := q.enter(opname); err != nil {
		return nil, err
	}
	defer q.exit()
	if !queue.ValidID(string(id)) {
		return nil, backend.NotFound(opname, id)
	}
	f, err := os.Open(q.path("msg", string(id)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, backend.NotFound(opname, id)
	}
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, opname, err, "cannot open the body of %s", id)
	}
	return f, nil
}

// Get implements queue.Queue.
func (q *Queue) Get(ctx context.Context, id queue.ID) (*queue.Entry, error) {
	const opname = "queue get"
	if err := q.enter(opname); err != nil {
		return nil, err
	}
	defer q.exit()
	var e *queue.Entry
	err := q.db.View(func(tx *bolt.Tx) error {
		var err error
		e, err = getEntry(tx, id)
		return err
	})
	if err != nil {
		return nil, indexError(opname, err)
	}
	if e == nil {
		return nil, backend.NotFound(opname, id)
	}
	q.markHeld([]*queue.Entry{e})
	return e, nil
}

// markHeld fills in HeldBy for the entries under a live lease of this
// process, the only one that can hold any.
func (q *Queue) markHeld(es []*queue.Entry) {
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, e := range es {
		if l := q.leases[e.ID]; l != nil && !l.ending && l.expires.After(now) {
			e.HeldBy = &queue.Holder{Node: "local", Until: l.expires}
		}
	}
}

func indexError(opname string, err error) error {
	var me *mailsec.Error
	if errors.As(err, &me) {
		return err
	}
	return mailsec.Errorf(mailsec.Config, opname, err, "queue index failure")
}

// getEntry returns nil, nil when there is no entry.
func getEntry(tx *bolt.Tx, id queue.ID) (*queue.Entry, error) {
	v := tx.Bucket(bucketEntries).Get([]byte(id))
	if v == nil {
		return nil, nil
	}
	e := new(queue.Entry)
	if err := json.Unmarshal(v, e); err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "queue index", err, "entry %s is corrupt", id)
	}
	return e, nil
}

// List implements queue.Queue.
func (q *Queue) List(ctx context.Context) ([]*queue.Entry, error) {
	const opname = "queue list"
	if err := q.enter(opname); err != nil {
		return nil, err
	}
	defer q.exit()
	var out []*queue.Entry
	err := q.db.View(func(tx *bolt.Tx) error {
		return forEach(tx, func(e *queue.Entry) { out = append(out, e) })
	})
	if err != nil {
		return nil, indexError(opname, err)
	}
	q.markHeld(out)
	return out, nil
}

// forEach visits the entries in ID order, which is creation order.
func forEach(tx *bolt.Tx, fn func(*queue.Entry)) error {
	return tx.Bucket(bucketEntries).ForEach(func(k, v []byte) error {
		e := new(queue.Entry)
		if err := json.Unmarshal(v, e); err != nil {
			return mailsec.Errorf(mailsec.Config, "queue index", err, "entry %s is corrupt", k)
		}
		fn(e)
		return nil
	})
}

// Stats implements queue.Queue.
func (q *Queue) Stats(ctx context.Context) (queue.Stats, error) {
	const opname = "queue stats"
	var s queue.Stats
	if err := q.enter(opname); err != nil {
		return s, err
	}
	defer q.exit()
	err := q.db.View(func(tx *bolt.Tx) error {
		return forEach(tx, func(e *queue.Entry) {
			s.Messages++
			s.Recipients += len(e.Pending())
			s.Octets += e.Size
			if e.Attempts > 0 {
				s.Deferred++
			}
			if s.Oldest.IsZero() || e.Created.Before(s.Oldest) {
				s.Oldest = e.Created
			}
		})
	})
	if err != nil {
		return queue.Stats{}, indexError(opname, err)
	}
	return s, nil
}

// dueKey orders the due index by time, then ID. The sign bit is flipped
// so that times before 1970 still sort first.
func dueKey(t time.Time, id queue.ID) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano())^(1<<63))
	return append(k, id...)
}

func dueTime(k []byte) int64 {
	return int64(binary.BigEndian.Uint64(k[:8]) ^ (1 << 63))
}

// clampDue keeps a due time within what UnixNano can represent (a zero
// time means due now).
func clampDue(t, now time.Time) time.Time {
	switch {
	case t.IsZero():
		return now
	case t.Before(time.Unix(0, math.MinInt64)):
		return time.Unix(0, math.MinInt64)
	case t.After(time.Unix(0, math.MaxInt64)):
		return time.Unix(0, math.MaxInt64)
	}
	return t
}

// Claim implements queue.Queue.
func (q *Queue) Claim(ctx context.Context, max int, d time.Duration) ([]*queue.Entry, error) {
	const opname = "queue claim"
	if err := q.enter(opname); err != nil {
		return nil, err
	}
	defer q.exit()
	if max <= 0 {
		return nil, nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	now := time.Now()
	var out []*queue.Entry
	err := q.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketDue).Cursor()
		for k, _ := c.First(); k != nil && len(out) < max; k, _ = c.Next() {
			if dueTime(k) > now.UnixNano() {
				break
			}
			id := queue.ID(k[8:])
			if l := q.leases[id]; q.busy[id] > 0 || q.missing[id] || l != nil && now.Before(l.expires) {
				continue
			}
			e, err := getEntry(tx, id)
			if err != nil {
				return err
			}
			if e == nil {
				return mailsec.Errorf(mailsec.Config, opname, nil, "due index names %s, which has no entry", id)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, indexError(opname, err)
	}
	for _, e := range out {
		l := &lease{token: backend.NewToken(), expires: now.Add(d)}
		q.leases[e.ID] = l
		e.Lease = &queue.Lease{ID: e.ID, Token: l.token, Expires: l.expires}
	}
	return out, nil
}

// Record implements queue.Queue.
func (q *Queue) Record(ctx context.Context, l *queue.Lease, a *queue.Attempt) error {
	const opname = "queue record"
	if l == nil || a == nil {
		return mailsec.Errorf(mailsec.Data, opname, nil, "no lease or no attempt")
	}
	if err := q.enter(opname); err != nil {
		return err
	}
	defer q.exit()
	return q.submit(&op{kind: opRecord, id: l.ID, token: l.Token, attempt: a})
}

// Complete implements queue.Queue.
func (q *Queue) Complete(ctx context.Context, l *queue.Lease) error {
	const opname = "queue complete"
	if l == nil {
		return mailsec.Errorf(mailsec.Data, opname, nil, "no lease")
	}
	if err := q.enter(opname); err != nil {
		return err
	}
	defer q.exit()
	return q.submit(&op{kind: opComplete, id: l.ID, token: l.Token})
}

// Retry implements queue.Queue.
func (q *Queue) Retry(ctx context.Context, id queue.ID) error {
	if err := q.enter("queue retry"); err != nil {
		return err
	}
	defer q.exit()
	return q.submit(&op{kind: opRetry, id: id})
}

// Delete implements queue.Queue.
func (q *Queue) Delete(ctx context.Context, id queue.ID) error {
	if err := q.enter("queue delete"); err != nil {
		return err
	}
	defer q.exit()
	return q.submit(&op{kind: opDelete, id: id})
}

type opKind int

const (
	opEnqueue opKind = iota
	opRecord
	opComplete
	opRetry
	opDelete
)

var opNames = [...]string{"queue enqueue", "queue record", "queue complete", "queue retry", "queue delete"}

// op is one write waiting for the committer.
type op struct {
	kind    opKind
	id      queue.ID
	entry   *queue.Entry   // opEnqueue
	token   string         // opRecord, opComplete
	attempt *queue.Attempt // opRecord

	// Set by the committer.
	lease *lease // the lease the op ends, restored if the commit fails
	held  bool   // counted in busy
	err   error
	done  chan struct{}
}

// submit hands o to the committer and waits for its result. The wait
// ignores the caller's context: once handed over, the operation may
// commit, and returning early would misreport it.
func (q *Queue) submit(o *op) error {
	o.done = make(chan struct{})
	q.ops <- o
	<-o.done
	return o.err
}

// commitLoop is the single writer: it takes whatever operations are
// waiting, so that the callers that came during one commit share the
// next.
func (q *Queue) commitLoop() {
	defer close(q.done)
	for o := range q.ops {
		group := []*op{o}
	gather:
		for {
			select {
			case o, ok := <-q.ops:
				if !ok {
					break gather
				}
				group = append(group, o)
			default:
				break gather
			}
		}
		q.commit(group)
		for _, o := range group {
			close(o.done)
		}
	}
}

func (q *Queue) commit(group []*op) {
	q.accept(group)
	renamed := q.placeBodies(group)
	now := time.Now()
	err := q.db.Update(func(tx *bolt.Tx) error {
		for _, o := range group {
			if o.err != nil {
				continue
			}
			if err := q.apply(tx, o, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		q.syncs.Add(2)
	} else {
		err = mailsec.Errorf(mailsec.Config, "queue commit", err, "cannot update the queue index")
		for _, o := range group {
			if o.err == nil {
				o.err = err
			}
		}
		for _, name := range renamed {
			os.Remove(name)
		}
	}
	q.finish(group)
}

// accept checks each operation's lease, in the order the operations will
// be applied, and marks the entries busy until finish.
func (q *Queue) accept(group []*op) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, o := range group {
		l := q.leases[o.id]
		switch o.kind {
		case opRecord, opComplete:
			if l == nil || l.token != o.token || l.ending {
				o.err = backend.LeaseLost(opNames[o.kind], o.id)
				continue
			}
			l.ending, o.lease = true, l
		case opRetry, opDelete:
			if l != nil && !l.ending {
				l.ending, o.lease = true, l
			}
		}
		q.busy[o.id]++
		o.held = true
	}
}

// placeBodies moves the new bodies into msg/ and makes the moves
// durable with one fsync of the directory, before the commit that makes
// them part of the queue. It returns the bodies moved.
func (q *Queue) placeBodies(group []*op) []string {
	var renamed []string
	for _, o := range group {
		if o.kind != opEnqueue || o.err != nil {
			continue
		}
		name := q.path("msg", string(o.id))
		if err := os.Rename(q.path("tmp", string(o.id)), name); err != nil {
			o.err = mailsec.Errorf(mailsec.Config, opNames[o.kind], err, "cannot move the body into msg/")
			os.Remove(q.path("tmp", string(o.id)))
			continue
		}
		renamed = append(renamed, name)
	}
	if len(renamed) == 0 {
		return nil
	}
	q.syncs.Add(1)
	if err := store.SyncDir(q.path("msg")); err != nil {
		err = mailsec.Errorf(mailsec.Config, "queue enqueue", err, "cannot sync msg/")
		for _, o := range group {
			if o.kind == opEnqueue && o.err == nil {
				o.err = err
			}
		}
		for _, name := range renamed {
			os.Remove(name)
		}
		return nil
	}
	return renamed
}

// apply makes one operation's change in tx. What the caller did wrong is
// left in o.err and the transaction goes on for the others; only a
// failure of the index itself is returned, and fails the whole group.
func (q *Queue) apply(tx *bolt.Tx, o *op, now time.Time) error {
	entries, due := tx.Bucket(bucketEntries), tx.Bucket(bucketDue)
	if o.kind == opEnqueue {
		if entries.Get([]byte(o.id)) != nil {
			o.err = mailsec.Errorf(mailsec.Config, opNames[o.kind], nil, "ID %s is already in use", o.id)
			return nil
		}
		return putEntry(entries, due, o.entry, nil)
	}
	e, err := getEntry(tx, o.id)
	if err != nil {
		return err
	}
	if e == nil {
		if o.kind == opRecord || o.kind == opComplete {
			o.err = backend.LeaseLost(opNames[o.kind], o.id)
		} else {
			o.err = backend.NotFound(opNames[o.kind], o.id)
		}
		return nil
	}
	old := dueKey(e.NextAttempt, e.ID)
	switch o.kind {
	case opRecord:
		a := o.attempt
		if o.err = backend.Apply(opNames[o.kind], e.ID, &e.Envelope, a); o.err != nil {
			return nil
		}
		e.Attempts++
		e.NextAttempt = clampDue(a.NextAttempt, now)
		e.DelayNotified = e.DelayNotified || a.DelayNotified
		return putEntry(entries, due, e, old)
	case opRetry:
		if e.NextAttempt.After(now) {
			e.NextAttempt = now
		}
		return putEntry(entries, due, e, old)
	}
	if err := entries.Delete([]byte(e.ID)); err != nil {
		return err
	}
	return due.Delete(old)
}

// putEntry stores e and moves its due key from old (nil for a new entry).
func putEntry(entries, due *bolt.Bucket, e *queue.Entry, old []byte) error {
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if err := entries.Put([]byte(e.ID), v); err != nil {
		return err
	}
	k := dueKey(e.NextAttempt, e.ID)
	if old != nil && !bytes.Equal(old, k) {
		if err := due.Delete(old); err != nil {
			return err
		}
	}
	return due.Put(k, nil)
}

// finish updates the claim state with what was committed, removes the
// bodies of removed entries and tells the deliverers of new due work.
func (q *Queue) finish(group []*op) {
	wake := false
	q.mu.Lock()
	for _, o := range group {
		if !o.held {
			continue
		}
		if q.busy[o.id]--; q.busy[o.id] == 0 {
			delete(q.busy, o.id)
		}
		if o.err != nil {
			if o.lease != nil {
				o.lease.ending = false
			}
			continue
		}
		if o.lease != nil && q.leases[o.id] == o.lease {
			delete(q.leases, o.id)
		}
		switch o.kind {
		case opEnqueue, opRetry:
			wake = true
		case opComplete, opDelete:
			delete(q.missing, o.id)
		}
	}
	q.mu.Unlock()
	for _, o := range group {
		if o.err == nil && (o.kind == opComplete || o.kind == opDelete) {
			err := os.Remove(q.path("msg", string(o.id)))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				q.log.Error("cannot remove the body of a removed message", "id", o.id, "err", err)
			}
		}
	}
	if wake {
		q.notify()
	}
}

var _ queue.Queue = (*Queue)(nil)
