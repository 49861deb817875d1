package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/pgtest"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/queue/queuetest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

var bg = context.Background()

func open(t testing.TB, dsn string, opts *Options) *Queue {
	t.Helper()
	q, err := Open(bg, dsn, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func TestConformance(t *testing.T) {
	quiet := &Options{Logger: slog.New(slog.DiscardHandler)}
	queuetest.Run(t, func(t *testing.T) queue.Queue { return open(t, pgtest.Start(t), quiet) })
}

func oneRcpt(addr string) *queue.Envelope {
	return &queue.Envelope{From: "s@example.org", Recipients: []queue.Recipient{{Addr: addr}}}
}

func enqueue(t testing.TB, q *Queue, body string) queue.ID {
	t.Helper()
	id, err := q.Enqueue(bg, oneRcpt("r@example.com"), strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func sql(t *testing.T, dsn string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(bg, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(bg) })
	return c
}

// countingHandler counts the log records whose message is msg.
type countingHandler struct {
	msg string
	n   *atomic.Int64
}

func (h countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h countingHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.n.Add(1)
	}
	return nil
}
func (h countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h countingHandler) WithGroup(string) slog.Handler      { return h }

func versions(t *testing.T, c *pgx.Conn) map[int]int {
	t.Helper()
	rows, err := c.Query(bg, `SELECT version, count(*) FROM schema_migrations GROUP BY version`)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]int{}
	for rows.Next() {
		var v, n int
		if err := rows.Scan(&v, &n); err != nil {
			t.Fatal(err)
		}
		out[v] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// openConcurrently opens n queues at once and reports how many
// migrations they applied between them.
func openConcurrently(t *testing.T, dsn string, n int) int64 {
	t.Helper()
	var applied atomic.Int64
	log := slog.New(countingHandler{"applied queue schema migration", &applied})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q, err := Open(bg, dsn, &Options{Logger: log, Node: fmt.Sprintf("node%d", i)})
			if err != nil {
				errs <- err
				return
			}
			q.Close()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Open: %v", err)
	}
	return applied.Load()
}

func TestMigrateFresh(t *testing.T) {
	dsn := pgtest.Start(t)
	if n := openConcurrently(t, dsn, 4); n != int64(len(migrations)) {
		t.Fatalf("4 concurrent Opens of a fresh database applied %d migrations, want %d", n, len(migrations))
	}
	c := sql(t, dsn)
	want := map[int]int{}
	for _, m := range migrations {
		want[m.version] = 1
	}
	if got := versions(t, c); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("schema_migrations: %v, want %v", got, want)
	}
	// Opening again finds nothing to do.
	if n := openConcurrently(t, dsn, 2); n != 0 {
		t.Fatalf("reopening applied %d migrations", n)
	}
}

// A node started against an older schema migrates it once, even when
// two start together, and the migration carries the data over.
func TestMigrateOldSchema(t *testing.T) {
	dsn := pgtest.Start(t)
	old := &Queue{log: slog.Default(), node: "old"}
	var err error
	if old.pool, err = pgxpool.New(bg, dsn); err != nil {
		t.Fatal(err)
	}
	old.ctx, old.cancel = context.WithCancel(bg)
	if err := old.migrate(bg, 1); err != nil {
		t.Fatal(err)
	}
	old.cancel()
	old.pool.Close()
	c := sql(t, dsn)
	// An entry as version 1 stored it, with two of three recipients
	// pending.
	if _, err := c.Exec(bg, `INSERT INTO messages (id, envelope, size) VALUES ('old1', $1, 4)`,
		`{"from":"s@example.org","recipients":[{"addr":"a@example.com","status":"pending"},{"addr":"b@example.com","status":"delivered"},{"addr":"c@example.com","status":"pending"}]}`); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(bg, `INSERT INTO bodies (id, body) VALUES ('old1', 'body')`); err != nil {
		t.Fatal(err)
	}
	if got := versions(t, c); fmt.Sprint(got) != "map[1:1]" {
		t.Fatalf("schema_migrations at version 1: %v", got)
	}

	// 0002 adds a column without IF NOT EXISTS: applying it twice would
	// fail one of the Opens.
	if n := openConcurrently(t, dsn, 2); n != 1 {
		t.Fatalf("two Opens of a version 1 database applied %d migrations, want 1", n)
	}
	if got := versions(t, c); fmt.Sprint(got) != "map[1:1 2:1]" {
		t.Fatalf("schema_migrations after the upgrade: %v", got)
	}
	q := open(t, dsn, nil)
	s, err := q.Stats(bg)
	if err != nil {
		t.Fatal(err)
	}
	if s.Messages != 1 || s.Recipients != 2 || s.Octets != 4 {
		t.Fatalf("Stats after the upgrade: %+v, want 1 message, 2 pending recipients, 4 octets", s)
	}
	if b := string(queuetest.ReadBody(t, q, "old1")); b != "body" {
		t.Fatalf("body after the upgrade: %q", b)
	}
}

func TestMigrateNewerSchema(t *testing.T) {
	dsn := pgtest.Start(t)
	open(t, dsn, nil).Close()
	c := sql(t, dsn)
	if _, err := c.Exec(bg, `INSERT INTO schema_migrations (version, name, node) VALUES ($1, 'future', 'x')`, len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	_, err := Open(bg, dsn, nil)
	if mailsec.CodeOf(err) != mailsec.Config || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("Open of a newer schema: %v", err)
	}
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(bg, "postgres://127.0.0.1:1/x?connect_timeout=1", nil); mailsec.CodeOf(err) != mailsec.Config {
		t.Fatalf("Open of an unreachable database: %v", err)
	}
	if _, err := Open(bg, "postgres://h/x", &Options{MaxBodySize: MaxBodyLimit + 1}); mailsec.CodeOf(err) != mailsec.Config {
		t.Fatalf("Open with MaxBodySize over the limit: %v", err)
	}
}

func TestMaxBodySize(t *testing.T) {
	dsn := pgtest.Start(t)
	for _, limit := range []int64{1000, 3 << 20} { // in memory, spooled to a file
		q := open(t, dsn, &Options{MaxBodySize: limit})
		if _, err := q.Enqueue(bg, oneRcpt("r@example.com"), bytes.NewReader(make([]byte, limit))); err != nil {
			t.Fatalf("a body of exactly %d: %v", limit, err)
		}
		_, err := q.Enqueue(bg, oneRcpt("r@example.com"), bytes.NewReader(make([]byte, limit+1)))
		if mailsec.CodeOf(err) != mailsec.Data || !strings.Contains(err.Error(), "limit") {
			t.Fatalf("a body of %d over a limit of %d: %v", limit+1, limit, err)
		}
		s, err := q.Stats(bg)
		if err != nil {
			t.Fatal(err)
		}
		if s.Messages != 1 {
			t.Fatalf("limit %d: %d messages stored, want the one within the limit", limit, s.Messages)
		}
		list, _ := q.List(bg)
		q.Delete(bg, list[0].ID)
	}
}

// Two nodes claiming at once never get the same entry.
func TestTwoNodesClaim(t *testing.T) {
	dsn := pgtest.Start(t)
	a, b := open(t, dsn, &Options{Node: "a"}), open(t, dsn, &Options{Node: "b"})
	const n = 300
	for i := 0; i < n; i++ {
		enqueue(t, a, fmt.Sprint(i))
	}
	var (
		mu      sync.Mutex
		claimed = map[queue.ID]string{}
		wg      sync.WaitGroup
	)
	for _, q := range []*Queue{a, b, a, b, a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				es, err := q.Claim(bg, 5, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(es) == 0 {
					return
				}
				mu.Lock()
				for _, e := range es {
					if by, dup := claimed[e.ID]; dup {
						t.Errorf("%s claimed by %s and %s", e.ID, by, q.node)
					}
					claimed[e.ID] = q.node
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claimed) != n {
		t.Fatalf("%d entries claimed, want %d", len(claimed), n)
	}
	nodes := map[string]int{}
	for _, by := range claimed {
		nodes[by]++
	}
	t.Logf("claims per node: %v", nodes)
}

// A lease one node let run out is fenced once another node claims the
// entry; the node that holds it records.
func TestLeaseAcrossNodes(t *testing.T) {
	dsn := pgtest.Start(t)
	a, b := open(t, dsn, &Options{Node: "a"}), open(t, dsn, &Options{Node: "b"})
	id := enqueue(t, a, "body")
	es, err := a.Claim(bg, 10, time.Second)
	if err != nil || len(es) != 1 {
		t.Fatalf("Claim on a: %v, %v", es, err)
	}
	old := es[0].Lease
	if es, _ := b.Claim(bg, 10, time.Minute); len(es) != 0 {
		t.Fatal("b claimed an entry a holds")
	}
	time.Sleep(time.Until(old.Expires) + 200*time.Millisecond)
	es, err = b.Claim(bg, 10, time.Minute)
	if err != nil || len(es) != 1 || es[0].ID != id {
		t.Fatalf("Claim on b after a's lease ran out: %v, %v", es, err)
	}
	var node string
	c := sql(t, dsn)
	if err := c.QueryRow(bg, `SELECT lease_node FROM messages WHERE id = $1`, string(id)).Scan(&node); err != nil || node != "b" {
		t.Fatalf("lease_node = %q, %v; want b", node, err)
	}
	a1 := &queue.Attempt{Recipients: map[int]queue.RecipientUpdate{0: {Status: queue.Delivered}},
		NextAttempt: time.Now().Add(time.Hour)}
	if err := a.Record(bg, old, a1); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("Record on a with its old lease: %v", err)
	}
	if err := a.Complete(bg, old); !errors.Is(err, queue.ErrLeaseLost) {
		t.Fatalf("Complete on a with its old lease: %v", err)
	}
	if err := b.Record(bg, es[0].Lease, a1); err != nil {
		t.Fatal(err)
	}

	// A lease that ran out but that nobody claimed again still records.
	id2 := enqueue(t, a, "second")
	es, err = a.Claim(bg, 10, time.Second)
	if err != nil || len(es) != 1 || es[0].ID != id2 {
		t.Fatalf("Claim: %v, %v", es, err)
	}
	time.Sleep(time.Until(es[0].Lease.Expires) + 200*time.Millisecond)
	if err := a.Record(bg, es[0].Lease, &queue.Attempt{NextAttempt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Record under a lease that ran out unclaimed: %v", err)
	}
}

func expectWake(t *testing.T, q *Queue, within time.Duration, what string) {
	t.Helper()
	select {
	case <-q.Wake():
	case <-time.After(within):
		t.Fatalf("node %s not woken within %v after %s", q.node, within, what)
	}
}

func drain(q *Queue) {
	for {
		select {
		case <-q.Wake():
		default:
			return
		}
	}
}

// An Enqueue or a Retry on one node wakes the others through NOTIFY
// (polling is off, so nothing else can).
func TestWakeAcrossNodes(t *testing.T) {
	dsn := pgtest.Start(t)
	a := open(t, dsn, &Options{Node: "a", PollInterval: -1})
	b := open(t, dsn, &Options{Node: "b", PollInterval: -1})
	waitListening(t, b, 1)
	drain(b)
	id := enqueue(t, a, "body")
	expectWake(t, b, time.Second, "an Enqueue on a")
	es, err := b.Claim(bg, 1, time.Minute)
	if err != nil || len(es) != 1 {
		t.Fatalf("Claim: %v %v", es, err)
	}
	if err := b.Record(bg, es[0].Lease, &queue.Attempt{NextAttempt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	drain(b)
	if err := a.Retry(bg, id); err != nil {
		t.Fatal(err)
	}
	expectWake(t, b, time.Second, "a Retry on a")
}

func TestPoll(t *testing.T) {
	q := open(t, pgtest.Start(t), &Options{PollInterval: 50 * time.Millisecond})
	for i := 0; i < 3; i++ {
		drain(q)
		expectWake(t, q, time.Second, "nothing (polling)")
	}
}

func waitListening(t *testing.T, q *Queue, n int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for q.listens.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("node %s is not listening (%d times, want %d)", q.node, q.listens.Load(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The database crashes and comes back: calls fail with an error instead
// of hanging while it is down, work again after, LISTEN resumes, and
// nothing committed is lost. The crash is an immediate shutdown on a
// server whose default is synchronous_commit off (see pgtest), so a
// commit acknowledged before its WAL reached the disk would be lost.
func TestDatabaseRestart(t *testing.T) {
	dsn := pgtest.Start(t)
	a := open(t, dsn, &Options{Node: "a", PollInterval: -1})
	b := open(t, dsn, &Options{Node: "b", PollInterval: -1})
	waitListening(t, b, 1)
	committed := map[queue.ID]string{}
	for i := 0; i < 20; i++ {
		body := fmt.Sprintf("before %d", i)
		committed[enqueue(t, a, body)] = body
	}
	held, err := a.Claim(bg, 1, time.Minute)
	if err != nil || len(held) != 1 {
		t.Fatalf("Claim: %v %v", held, err)
	}

	// Enqueues running while the database stops: each either commits
	// (and must survive) or fails with a *mailsec.Error.
	var (
		mu   sync.Mutex
		stop atomic.Bool
		wg   sync.WaitGroup
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				body := fmt.Sprintf("during %d %d", w, i)
				id, err := a.Enqueue(bg, oneRcpt("r@example.com"), strings.NewReader(body))
				var me *mailsec.Error
				switch {
				case err == nil:
					mu.Lock()
					committed[id] = body
					mu.Unlock()
				case !errors.As(err, &me):
					t.Errorf("Enqueue while the database stops: %v (%T), not a *mailsec.Error", err, err)
					return
				default:
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(100 * time.Millisecond)
	pgtest.Crash(t)

	ctx, cancel := context.WithTimeout(bg, 30*time.Second)
	defer cancel()
	start := time.Now()
	check := func(what string, err error) {
		t.Helper()
		var me *mailsec.Error
		if err == nil || !errors.As(err, &me) {
			t.Fatalf("%s while the database is down: %v, want a *mailsec.Error", what, err)
		}
	}
	_, err = a.Enqueue(ctx, oneRcpt("r@example.com"), strings.NewReader("down"))
	check("Enqueue", err)
	_, err = a.Claim(ctx, 10, time.Minute)
	check("Claim", err)
	check("Record", a.Record(ctx, held[0].Lease, &queue.Attempt{}))
	_, err = a.Stats(ctx)
	check("Stats", err)
	_, err = a.Body(ctx, held[0].ID)
	check("Body", err)
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("failing calls took %v", d)
	}
	listens := b.listens.Load()

	pgtest.Restart(t)
	stop.Store(true)
	wg.Wait()

	// The pool replaces the connections the restart broke.
	if _, err := a.Stats(bg); err != nil {
		t.Fatalf("Stats after the restart: %v", err)
	}
	if err := a.Record(bg, held[0].Lease, &queue.Attempt{NextAttempt: time.Now().Add(time.Hour)}); err != nil {
		t.Fatalf("Record after the restart: %v", err)
	}
	after := enqueue(t, a, "after")
	committed[after] = "after"

	waitListening(t, b, listens+1)
	drain(b)
	enqueue(t, a, "wake")
	expectWake(t, b, time.Second, "an Enqueue after the restart")

	list, err := b.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	have := map[queue.ID]bool{}
	for _, e := range list {
		have[e.ID] = true
	}
	for id, body := range committed {
		if !have[id] {
			t.Fatalf("committed message %s lost", id)
		}
		if got := string(queuetest.ReadBody(t, b, id)); got != body {
			t.Fatalf("body of %s is %q, want %q", id, got, body)
		}
	}
	t.Logf("%d messages committed, %d of them by the writers racing the stop", len(committed), len(committed)-22)
}

// Three nodes sharing a limit of 2 never hold more than 2 slots of a
// destination at once, and a node that dies holding a slot loses it
// when its lease runs out.
func TestAcquireAcrossNodes(t *testing.T) {
	dsn := pgtest.Start(t)
	var nodes []*Queue
	for i := 0; i < 3; i++ {
		nodes = append(nodes, open(t, dsn, &Options{Node: fmt.Sprintf("n%d", i), SlotLease: time.Second}))
	}
	const limit = 2
	var (
		held, peak atomic.Int64
		wg         sync.WaitGroup
	)
	for g := 0; g < 9; g++ {
		q := nodes[g%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 8; i++ {
				release, err := q.Acquire(bg, "mx.example.com", limit)
				if err != nil {
					t.Error(err)
					return
				}
				n := held.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				if n > limit {
					t.Errorf("%d slots held at once, limit %d", n, limit)
				}
				// Longer than a renewal period now and then, so that
				// renewals are exercised.
				time.Sleep(time.Duration(5+i*i*7) * time.Millisecond)
				held.Add(-1)
				release()
			}
		}()
	}
	wg.Wait()
	if peak.Load() != limit {
		t.Fatalf("at most %d slots were held at once, want %d", peak.Load(), limit)
	}
	// Another destination has slots of its own.
	r1, err := nodes[0].Acquire(bg, "other.example.com", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer r1()

	// n0 takes the only slot and dies; n1 gets it after the lease.
	if _, err := nodes[0].Acquire(bg, "dead.example.com", 1); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(bg, 300*time.Millisecond)
	_, err = nodes[1].Acquire(ctx, "dead.example.com", 1)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire of a held slot: %v, want the context's deadline", err)
	}
	nodes[0].Close()
	start := time.Now()
	ctx, cancel = context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	release, err := nodes[1].Acquire(ctx, "dead.example.com", 1)
	if err != nil {
		t.Fatalf("Acquire of a dead node's slot: %v", err)
	}
	t.Logf("a dead node's slot came back after %v", time.Since(start))
	release()
	release() // twice is harmless
	if r, err := nodes[2].Acquire(ctx, "dead.example.com", 1); err != nil {
		t.Fatalf("Acquire after release: %v", err)
	} else {
		r()
	}
}

func BenchmarkEnqueue(b *testing.B) {
	q := open(b, pgtest.Start(b), &Options{PollInterval: -1, Logger: slog.New(slog.DiscardHandler)})
	body := bytes.Repeat([]byte("0123456789abcdef"), 256)
	b.SetBytes(int64(len(body)))
	b.SetParallelism(4)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := q.Enqueue(bg, oneRcpt("r@example.com"), bytes.NewReader(body)); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
