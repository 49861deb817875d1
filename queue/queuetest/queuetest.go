// Package queuetest is the conformance suite of queue.Queue: every
// implementation runs it from its own tests, so that the embedded queue
// and a shared database behave alike for smtpd and the deliverers.
package queuetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/queue"
)

// Run runs the suite. open must return a new, empty queue for each call
// and close it when t ends (t.Cleanup); the suite closes some queues
// itself, so a second Close must not panic (its error is ignored).
//
// Times the suite hands to the queue are whole seconds, so a store that
// keeps microseconds (PostgreSQL) returns them unchanged; the leases it
// takes are short (about a second) and it sleeps until they run out.
func Run(t *testing.T, open func(t *testing.T) queue.Queue) {
	tests := []struct {
		name string
		fn   func(*testing.T, queue.Queue)
	}{
		{"RoundTrip", testRoundTrip},
		{"BodyReadError", testBodyReadError},
		{"ClaimDueOnly", testClaimDueOnly},
		{"ClaimOrder", testClaimOrder},
		{"ClaimConcurrent", testClaimConcurrent},
		{"LeaseExpiry", testLeaseExpiry},
		{"Record", testRecord},
		{"Complete", testComplete},
		{"Retry", testRetry},
		{"Delete", testDelete},
		{"Stats", testStats},
		{"Wake", testWake},
		{"Close", testClose},
		{"LargeBody", testLargeBody},
		{"ConcurrentEnqueue", testConcurrentEnqueue},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

// slack is how far the queue's clock may be from the test's: a shared
// database timestamps with its own.
const slack = 5 * time.Second

var bg = context.Background()

func sampleEnvelope() *queue.Envelope {
	return &queue.Envelope{
		From: "sender@example.org",
		Recipients: []queue.Recipient{
			{Addr: "one@example.com", Notify: "SUCCESS,FAILURE", ORcpt: "rfc822;one@example.com"},
			{Addr: "δοκιμή@παράδειγμα.δοκιμή", Notify: "NEVER"},
			{Addr: "three@example.net"},
		},
		AuthUser:   "alice",
		UTF8:       true,
		Body:       "8BITMIME",
		RequireTLS: true,
		Ret:        "HDRS",
		EnvID:      "QQ314159",
	}
}

func enqueue(t *testing.T, q queue.Queue, env *queue.Envelope, body []byte) queue.ID {
	t.Helper()
	id, err := q.Enqueue(bg, env, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("Enqueue: %v", err)
	}
	if !queue.ValidID(string(id)) {
		t.Fatalf("Enqueue returned ID %q, which is not valid", id)
	}
	return id
}

func oneRcpt(addr string) *queue.Envelope {
	return &queue.Envelope{From: "s@example.org", Recipients: []queue.Recipient{{Addr: addr}}}
}

func get(t *testing.T, q queue.Queue, id queue.ID) *queue.Entry {
	t.Helper()
	e, err := q.Get(bg, id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return e
}

// ReadBody reads a message's body whole, failing the test on an error;
// the backends' own tests use it too.
func ReadBody(t *testing.T, q queue.Queue, id queue.ID) []byte {
	t.Helper()
	r, err := q.Body(bg, id)
	if err != nil {
		t.Fatalf("Body(%s): %v", id, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading body of %s: %v", id, err)
	}
	return b
}

func claim(t *testing.T, q queue.Queue, max int, d time.Duration) []*queue.Entry {
	t.Helper()
	es, err := q.Claim(bg, max, d)
	if err != nil {
		t.Fatalf("Claim: %v", err)
	}
	for _, e := range es {
		if e.Lease == nil || e.Lease.ID != e.ID || e.Lease.Token == "" {
			t.Fatalf("Claim returned %s with lease %+v", e.ID, e.Lease)
		}
	}
	return es
}

func claimOne(t *testing.T, q queue.Queue, d time.Duration) *queue.Entry {
	t.Helper()
	es := claim(t, q, 10, d)
	if len(es) != 1 {
		t.Fatalf("Claim returned %d entries, want 1", len(es))
	}
	return es[0]
}

func claimNone(t *testing.T, q queue.Queue) {
	t.Helper()
	if es := claim(t, q, 10, time.Minute); len(es) != 0 {
		t.Fatalf("Claim returned %s, want nothing", ids(es))
	}
}

func ids(es []*queue.Entry) []queue.ID {
	var out []queue.ID
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func record(t *testing.T, q queue.Queue, l *queue.Lease, a *queue.Attempt) {
	t.Helper()
	if err := q.Record(bg, l, a); err != nil {
		t.Fatalf("Record(%s): %v", l.ID, err)
	}
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
	var me *mailsec.Error
	if !errors.As(err, &me) {
		t.Fatalf("%s: error %v (%T) is not a *mailsec.Error", what, err, err)
	}
}

// normEnvelope makes envelopes comparable with reflect.DeepEqual across
// a store's encoding: time locations are dropped.
func normEnvelope(env queue.Envelope) queue.Envelope {
	rs := append([]queue.Recipient(nil), env.Recipients...)
	for i := range rs {
		if rs[i].Last != nil {
			o := *rs[i].Last
			o.Time = o.Time.UTC()
			rs[i].Last = &o
		}
	}
	env.Recipients = rs
	return env
}

func checkEnvelope(t *testing.T, what string, got, want queue.Envelope) {
	t.Helper()
	g, w := normEnvelope(got), normEnvelope(want)
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("%s: envelope\n got %s\nwant %s", what, dump(g), dump(w))
	}
}

func dump(env queue.Envelope) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%+v", env)
	for _, r := range env.Recipients {
		if r.Last != nil {
			fmt.Fprintf(&b, "\n  %s last %+v reply %+v tls %+v", r.Addr, *r.Last, r.Last.Reply, r.Last.TLS)
		}
	}
	return b.String()
}

func testRoundTrip(t *testing.T, q queue.Queue) {
	env := sampleEnvelope()
	body := []byte("From: <sender@example.org>\r\nSubject: test\r\n\r\n\x00\xff\xfe binary\r\n.\r\n..\r\nno final newline")
	before := time.Now()
	id := enqueue(t, q, env, body)
	after := time.Now()
	null := enqueue(t, q, &queue.Envelope{Recipients: []queue.Recipient{{Addr: "bounce@example.org"}}}, nil)
	if id == null {
		t.Fatalf("two messages got the same ID %s", id)
	}

	e := get(t, q, id)
	if e.ID != id {
		t.Fatalf("Get(%s) returned entry %s", id, e.ID)
	}
	checkEnvelope(t, "Get", e.Envelope, *env)
	if e.Size != int64(len(body)) {
		t.Errorf("Size = %d, want %d", e.Size, len(body))
	}
	if e.Created.Before(before.Add(-slack)) || e.Created.After(after.Add(slack)) {
		t.Errorf("Created = %v, not between %v and %v", e.Created, before, after)
	}
	if e.NextAttempt.After(time.Now().Add(slack)) {
		t.Errorf("a new entry is due at %v, want now", e.NextAttempt)
	}
	if e.Attempts != 0 || e.DelayNotified || e.Lease != nil {
		t.Errorf("new entry has Attempts %d, DelayNotified %v, Lease %v", e.Attempts, e.DelayNotified, e.Lease)
	}
	if got := ReadBody(t, q, id); !bytes.Equal(got, body) {
		t.Fatalf("Body = %q, want %q", got, body)
	}
	if got := ReadBody(t, q, null); len(got) != 0 {
		t.Fatalf("empty body came back as %q", got)
	}
	if n := get(t, q, null); n.From != "" || n.Size != 0 {
		t.Fatalf("null-sender entry: From %q, Size %d", n.From, n.Size)
	}

	list, err := q.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != id || list[1].ID != null {
		t.Fatalf("List = %v, want [%s %s]", ids(list), id, null)
	}
	checkEnvelope(t, "List", list[0].Envelope, *env)
	if list[0].Size != e.Size || !list[0].Created.Equal(e.Created) {
		t.Fatalf("List and Get disagree: %+v / %+v", list[0], e)
	}

	es := claim(t, q, 10, time.Minute)
	if len(es) != 2 {
		t.Fatalf("Claim returned %v, want both", ids(es))
	}
	for _, c := range es {
		if c.ID == id {
			checkEnvelope(t, "Claim", c.Envelope, *env)
			if c.Size != e.Size {
				t.Fatalf("Claim: Size %d, want %d", c.Size, e.Size)
			}
		}
	}

	if _, err := q.Get(bg, "nosuchmessage0"); err == nil {
		t.Fatal("Get of an unknown ID succeeded")
	} else {
		wantErr(t, "Get unknown", err, queue.ErrNotFound)
	}
	_, err = q.Body(bg, "nosuchmessage0")
	wantErr(t, "Body unknown", err, queue.ErrNotFound)
}

// failingReader yields n bytes, then err.
type failingReader struct {
	n   int
	err error
}

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, r.err
	}
	if len(p) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = 'x'
	}
	r.n -= len(p)
	return len(p), nil
}

func testBodyReadError(t *testing.T, q queue.Queue) {
	cause := errors.New("client went away")
	_, err := q.Enqueue(bg, sampleEnvelope(), &failingReader{n: 100 << 10, err: cause})
	if !errors.Is(err, cause) {
		t.Fatalf("Enqueue with a failing body: error %v, want the reader's", err)
	}
	list, err := q.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("a failed Enqueue stored %v", ids(list))
	}
	s, err := q.Stats(bg)
	if err != nil {
		t.Fatal(err)
	}
	if s != (queue.Stats{}) {
		t.Fatalf("Stats after a failed Enqueue: %+v", s)
	}
	claimNone(t, q)
}

func testClaimDueOnly(t *testing.T, q queue.Queue) {
	var all []queue.ID
	for i := 0; i < 5; i++ {
		all = append(all, enqueue(t, q, oneRcpt(fmt.Sprintf("r%d@example.com", i)), []byte("body")))
	}
	first := claim(t, q, 2, time.Minute)
	if len(first) != 2 {
		t.Fatalf("Claim(2) returned %d entries", len(first))
	}
	for _, e := range first {
		if until := time.Until(e.Lease.Expires); until < time.Minute-slack || until > time.Minute+slack {
			t.Fatalf("lease of %s expires in %v, want a minute", e.ID, until)
		}
	}
	rest := claim(t, q, 10, time.Minute)
	if len(rest) != 3 {
		t.Fatalf("second Claim returned %d entries, want the other 3", len(rest))
	}
	got := append(ids(first), ids(rest)...)
	sort.Slice(got, func(i, j int) bool { return got[i] < got[j] })
	want := append([]queue.ID(nil), all...)
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("claimed %v, want %v", got, want)
	}
	claimNone(t, q)

	// Recorded for later: not due, so not claimable although no lease
	// holds it.
	later := time.Now().Add(time.Hour).Truncate(time.Second)
	for _, e := range append(first, rest...) {
		record(t, q, e.Lease, &queue.Attempt{NextAttempt: later})
	}
	claimNone(t, q)
	if es := claim(t, q, 0, time.Minute); len(es) != 0 {
		t.Fatalf("Claim(0) returned %v", ids(es))
	}
}

func testClaimOrder(t *testing.T, q queue.Queue) {
	a := enqueue(t, q, oneRcpt("a@example.com"), []byte("a"))
	b := enqueue(t, q, oneRcpt("b@example.com"), []byte("b"))
	c := enqueue(t, q, oneRcpt("c@example.com"), []byte("c"))
	now := time.Now().Truncate(time.Second)
	due := map[queue.ID]time.Time{a: now.Add(-1 * time.Second), b: now.Add(-3 * time.Second), c: now.Add(-2 * time.Second)}
	for _, e := range claim(t, q, 3, time.Minute) {
		record(t, q, e.Lease, &queue.Attempt{NextAttempt: due[e.ID]})
	}
	var got []queue.ID
	for i := 0; i < 3; i++ {
		es := claim(t, q, 1, time.Minute)
		if len(es) != 1 {
			t.Fatalf("Claim(1) returned %d entries", len(es))
		}
		got = append(got, es[0].ID)
	}
	if want := []queue.ID{b, c, a}; !reflect.DeepEqual(got, want) {
		t.Fatalf("claimed in order %v, want oldest due first %v", got, want)
	}
}

func testClaimConcurrent(t *testing.T, q queue.Queue) {
	const n, workers = 200, 8
	want := map[queue.ID]bool{}
	for i := 0; i < n; i++ {
		want[enqueue(t, q, oneRcpt(fmt.Sprintf("r%d@example.com", i)), []byte(fmt.Sprint(i)))] = true
	}
	var (
		mu      sync.Mutex
		claimed = map[queue.ID]int{}
		leases  []*queue.Lease
		wg      sync.WaitGroup
		errs    = make(chan error, workers)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				es, err := q.Claim(bg, 7, time.Minute)
				if err != nil {
					errs <- err
					return
				}
				if len(es) == 0 {
					return
				}
				mu.Lock()
				for _, e := range es {
					claimed[e.ID]++
					leases = append(leases, e.Lease)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Claim: %v", err)
	}
	for id, c := range claimed {
		if c != 1 {
			t.Errorf("%s claimed %d times", id, c)
		}
		if !want[id] {
			t.Errorf("claimed %s, which was never enqueued", id)
		}
	}
	if len(claimed) != n {
		t.Fatalf("%d entries claimed, want %d", len(claimed), n)
	}

	// Completing them all at once, as many deliverers finishing together.
	errs = make(chan error, len(leases))
	for _, l := range leases {
		wg.Add(1)
		go func(l *queue.Lease) {
			defer wg.Done()
			errs <- q.Complete(bg, l)
		}(l)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("Complete: %v", err)
		}
	}
	if s, err := q.Stats(bg); err != nil || s.Messages != 0 {
		t.Fatalf("Stats after completing everything: %+v, %v", s, err)
	}
}

func testLeaseExpiry(t *testing.T, q queue.Queue) {
	id := enqueue(t, q, sampleEnvelope(), []byte("body"))
	const d = time.Second
	old := claimOne(t, q, d)
	claimNone(t, q)
	time.Sleep(time.Until(old.Lease.Expires) + 100*time.Millisecond)

	cur := claimOne(t, q, time.Minute)
	if cur.ID != id {
		t.Fatalf("claimed %s, want %s", cur.ID, id)
	}
	if cur.Lease.Token == old.Lease.Token {
		t.Fatal("a new claim got the old lease's token")
	}
	a := &queue.Attempt{
		Recipients:  map[int]queue.RecipientUpdate{0: {Status: queue.Delivered, Outcome: &queue.Outcome{Time: time.Now().Truncate(time.Second)}}},
		NextAttempt: time.Now().Add(time.Hour).Truncate(time.Second),
	}
	wantErr(t, "Record with an expired lease", q.Record(bg, old.Lease, a), queue.ErrLeaseLost)
	wantErr(t, "Complete with an expired lease", q.Complete(bg, old.Lease), queue.ErrLeaseLost)
	forged := &queue.Lease{ID: id, Token: "forged", Expires: time.Now().Add(time.Hour)}
	wantErr(t, "Record with a forged lease", q.Record(bg, forged, a), queue.ErrLeaseLost)
	e := get(t, q, id)
	if e.Attempts != 0 || e.Recipients[0].Status != queue.Pending || e.Recipients[0].Last != nil {
		t.Fatalf("a stale lease changed the entry: %+v", e)
	}

	record(t, q, cur.Lease, a)
	wantErr(t, "Record with a lease Record ended", q.Record(bg, cur.Lease, a), queue.ErrLeaseLost)
	wantErr(t, "Complete with a lease Record ended", q.Complete(bg, cur.Lease), queue.ErrLeaseLost)
	if e := get(t, q, id); e.Attempts != 1 {
		t.Fatalf("Attempts = %d after one Record", e.Attempts)
	}
}

func testRecord(t *testing.T, q queue.Queue) {
	env := sampleEnvelope()
	id := enqueue(t, q, env, []byte("body"))
	c := claimOne(t, q, time.Minute)
	// An operator sees the delivery in progress, and by whom.
	if h := get(t, q, id).HeldBy; h == nil || h.Node == "" || !h.Until.After(time.Now()) {
		t.Errorf("Get during a lease: HeldBy %+v, want the holder", h)
	}
	when := time.Now().Truncate(time.Second)
	delivered := &queue.Outcome{
		Time: when, Host: "mx1.example.com", Addr: "192.0.2.1:25",
		Reply: &mailsec.Reply{Code: 250, Enhanced: "2.0.0", Lines: []string{"OK queued as 1234"}},
		TLS:   &queue.TLSRecord{Policy: "dane", Version: "TLS 1.3", CipherSuite: "TLS_AES_128_GCM_SHA256", Verdict: "dane-matched"},
	}
	deferred := &queue.Outcome{
		Time: when, Host: "mx.παράδειγμα.δοκιμή", Addr: "[2001:db8::1]:25",
		Reply:  &mailsec.Reply{Code: 451, Enhanced: "4.7.1", Lines: []string{"greylisted", "come back later"}},
		Code:   "SMTPServer",
		Detail: "the server said 451",
		TLS:    &queue.TLSRecord{Policy: "may"},
	}
	// An update of a recipient the entry does not have is refused whole:
	// the others named with it keep their state, and the lease holds.
	bad := &queue.Attempt{Recipients: map[int]queue.RecipientUpdate{
		0: {Status: queue.Delivered, Outcome: delivered}, len(env.Recipients): {Status: queue.Delivered},
	}}
	if err := q.Record(bg, c.Lease, bad); mailsec.CodeOf(err) != mailsec.Data {
		t.Fatalf("Record of recipient %d of %d: %v, want a Data error", len(env.Recipients), len(env.Recipients), err)
	}
	if e := get(t, q, id); e.Attempts != 0 || e.Recipients[0].Status != queue.Pending || e.Recipients[0].Last != nil {
		t.Fatalf("a refused Record changed the entry: %+v", e)
	}
	next := time.Now().Add(time.Hour).Truncate(time.Second)
	record(t, q, c.Lease, &queue.Attempt{
		Recipients: map[int]queue.RecipientUpdate{
			0: {Status: queue.Delivered, Outcome: delivered},
			1: {Status: queue.Pending, Outcome: deferred},
		},
		NextAttempt:   next,
		DelayNotified: true,
	})

	want := *env
	want.Recipients = append([]queue.Recipient(nil), env.Recipients...)
	want.Recipients[0].Status, want.Recipients[0].Last = queue.Delivered, delivered
	want.Recipients[1].Last = deferred
	e := get(t, q, id)
	checkEnvelope(t, "after Record", e.Envelope, want)
	if e.HeldBy != nil {
		t.Errorf("after Record: HeldBy %+v, want none (the lease ended)", e.HeldBy)
	}
	if e.Attempts != 1 || !e.NextAttempt.Equal(next) || !e.DelayNotified {
		t.Fatalf("after Record: Attempts %d, NextAttempt %v (want %v), DelayNotified %v",
			e.Attempts, e.NextAttempt, next, e.DelayNotified)
	}
	if p := e.Pending(); !reflect.DeepEqual(p, []int{1, 2}) {
		t.Fatalf("Pending() = %v, want [1 2]", p)
	}
	// Record ended the lease and the entry is not due for an hour.
	claimNone(t, q)

	if err := q.Retry(bg, id); err != nil {
		t.Fatal(err)
	}
	c = claimOne(t, q, time.Minute)
	failed := &queue.Outcome{Time: when.Add(time.Second), Reply: &mailsec.Reply{Code: 550, Enhanced: "5.1.1", Lines: []string{"no such user"}}}
	record(t, q, c.Lease, &queue.Attempt{
		Recipients: map[int]queue.RecipientUpdate{
			1: {Status: queue.Failed, Outcome: failed},
			2: {Status: queue.Delivered, Outcome: delivered},
		},
		// DelayNotified is not asked for again, and stays set.
	})
	want.Recipients[1].Status, want.Recipients[1].Last = queue.Failed, failed
	want.Recipients[2].Status, want.Recipients[2].Last = queue.Delivered, delivered
	e = get(t, q, id)
	checkEnvelope(t, "after the second Record", e.Envelope, want)
	if e.Attempts != 2 || !e.DelayNotified || len(e.Pending()) != 0 {
		t.Fatalf("after the second Record: Attempts %d, DelayNotified %v, Pending %v", e.Attempts, e.DelayNotified, e.Pending())
	}
	if l := e.LastOutcome(); l == nil || !l.Time.Equal(failed.Time) {
		t.Fatalf("LastOutcome = %+v", l)
	}
	// With nothing pending the entry waits for Complete; a deliverer that
	// died before it finds the entry again.
	c = claimOne(t, q, time.Minute)
	if err := q.Complete(bg, c.Lease); err != nil {
		t.Fatal(err)
	}
}

func testComplete(t *testing.T, q queue.Queue) {
	id := enqueue(t, q, sampleEnvelope(), []byte("body"))
	keep := enqueue(t, q, oneRcpt("keep@example.com"), []byte("kept"))
	var c *queue.Entry
	for _, e := range claim(t, q, 10, time.Minute) {
		if e.ID == id {
			c = e
		}
	}
	if c == nil {
		t.Fatalf("%s not claimed", id)
	}
	if err := q.Complete(bg, c.Lease); err != nil {
		t.Fatal(err)
	}
	_, err := q.Get(bg, id)
	wantErr(t, "Get after Complete", err, queue.ErrNotFound)
	_, err = q.Body(bg, id)
	wantErr(t, "Body after Complete", err, queue.ErrNotFound)
	wantErr(t, "second Complete", q.Complete(bg, c.Lease), queue.ErrLeaseLost)
	wantErr(t, "Record after Complete", q.Record(bg, c.Lease, &queue.Attempt{}), queue.ErrLeaseLost)
	list, err := q.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != keep {
		t.Fatalf("List after Complete = %v, want [%s]", ids(list), keep)
	}
	if b := ReadBody(t, q, keep); string(b) != "kept" {
		t.Fatalf("the other body is %q", b)
	}
}

func testRetry(t *testing.T, q queue.Queue) {
	id := enqueue(t, q, sampleEnvelope(), []byte("body"))
	c := claimOne(t, q, time.Minute)
	record(t, q, c.Lease, &queue.Attempt{NextAttempt: time.Now().Add(time.Hour).Truncate(time.Second)})
	claimNone(t, q)
	if err := q.Retry(bg, id); err != nil {
		t.Fatal(err)
	}
	if e := get(t, q, id); e.NextAttempt.After(time.Now().Add(slack)) {
		t.Fatalf("after Retry the entry is due at %v", e.NextAttempt)
	}

	// Retry ends a lease that is still running: the entry is claimable
	// at once and the old deliverer is fenced off.
	old := claimOne(t, q, time.Hour)
	if err := q.Retry(bg, id); err != nil {
		t.Fatal(err)
	}
	cur := claimOne(t, q, time.Minute)
	a := &queue.Attempt{
		Recipients:  map[int]queue.RecipientUpdate{0: {Status: queue.Failed}},
		NextAttempt: time.Now().Add(time.Hour).Truncate(time.Second),
	}
	wantErr(t, "Record under a lease Retry ended", q.Record(bg, old.Lease, a), queue.ErrLeaseLost)
	wantErr(t, "Complete under a lease Retry ended", q.Complete(bg, old.Lease), queue.ErrLeaseLost)
	if e := get(t, q, id); e.Attempts != 1 || e.Recipients[0].Status != queue.Pending {
		t.Fatalf("a fenced lease changed the entry: %+v", e)
	}
	record(t, q, cur.Lease, a)

	wantErr(t, "Retry unknown", q.Retry(bg, "nosuchmessage0"), queue.ErrNotFound)
}

func testDelete(t *testing.T, q queue.Queue) {
	id := enqueue(t, q, sampleEnvelope(), []byte("body"))
	keep := enqueue(t, q, oneRcpt("keep@example.com"), []byte("kept"))
	if err := q.Delete(bg, id); err != nil {
		t.Fatal(err)
	}
	_, err := q.Get(bg, id)
	wantErr(t, "Get after Delete", err, queue.ErrNotFound)
	_, err = q.Body(bg, id)
	wantErr(t, "Body after Delete", err, queue.ErrNotFound)
	wantErr(t, "second Delete", q.Delete(bg, id), queue.ErrNotFound)

	// Deleting a claimed entry fences its deliverer.
	c := claimOne(t, q, time.Minute)
	if c.ID != keep {
		t.Fatalf("claimed %s, want %s", c.ID, keep)
	}
	if err := q.Delete(bg, keep); err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Record after Delete", q.Record(bg, c.Lease, &queue.Attempt{}), queue.ErrLeaseLost)
	wantErr(t, "Complete after Delete", q.Complete(bg, c.Lease), queue.ErrLeaseLost)
	list, err := q.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Fatalf("List after Delete = %v", ids(list))
	}
	claimNone(t, q)
}

func testStats(t *testing.T, q queue.Queue) {
	s, err := q.Stats(bg)
	if err != nil {
		t.Fatal(err)
	}
	if s != (queue.Stats{}) {
		t.Fatalf("Stats of an empty queue: %+v", s)
	}
	mk := func(n int) *queue.Envelope {
		env := &queue.Envelope{From: "s@example.org"}
		for i := 0; i < n; i++ {
			env.Recipients = append(env.Recipients, queue.Recipient{Addr: fmt.Sprintf("r%d@example.com", i)})
		}
		return env
	}
	first := enqueue(t, q, mk(1), make([]byte, 10))
	second := enqueue(t, q, mk(2), make([]byte, 20))
	enqueue(t, q, mk(3), make([]byte, 30))
	for _, e := range claim(t, q, 10, time.Minute) {
		if e.ID == second {
			record(t, q, e.Lease, &queue.Attempt{
				Recipients:  map[int]queue.RecipientUpdate{0: {Status: queue.Delivered}},
				NextAttempt: time.Now().Add(time.Hour).Truncate(time.Second),
			})
		}
	}
	s, err = q.Stats(bg)
	if err != nil {
		t.Fatal(err)
	}
	oldest := get(t, q, first).Created
	if s.Messages != 3 || s.Recipients != 1+1+3 || s.Octets != 60 || s.Deferred != 1 || !s.Oldest.Equal(oldest) {
		t.Fatalf("Stats = %+v, want 3 messages, 5 recipients, 60 octets, 1 deferred, oldest %v", s, oldest)
	}
}

func testWake(t *testing.T, q queue.Queue) {
	w := q.Wake()
	drain := func() {
		for {
			select {
			case <-w:
			default:
				return
			}
		}
	}
	expect := func(what string) {
		t.Helper()
		select {
		case <-w:
		case <-time.After(5 * time.Second):
			t.Fatalf("no wake-up after %s", what)
		}
	}
	drain()
	id := enqueue(t, q, sampleEnvelope(), []byte("body"))
	expect("Enqueue")
	c := claimOne(t, q, time.Minute)
	record(t, q, c.Lease, &queue.Attempt{NextAttempt: time.Now().Add(time.Hour).Truncate(time.Second)})
	drain()
	if err := q.Retry(bg, id); err != nil {
		t.Fatal(err)
	}
	expect("Retry")
}

func testClose(t *testing.T, q queue.Queue) {
	id := enqueue(t, q, sampleEnvelope(), []byte("body"))
	c := claimOne(t, q, time.Minute)
	if err := q.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	check := func(what string, err error) {
		t.Helper()
		wantErr(t, what+" after Close", err, queue.ErrClosed)
	}
	_, err := q.Enqueue(bg, sampleEnvelope(), strings.NewReader("body"))
	check("Enqueue", err)
	_, err = q.Claim(bg, 10, time.Minute)
	check("Claim", err)
	_, err = q.Body(bg, id)
	check("Body", err)
	check("Record", q.Record(bg, c.Lease, &queue.Attempt{}))
	check("Complete", q.Complete(bg, c.Lease))
	_, err = q.Get(bg, id)
	check("Get", err)
	_, err = q.List(bg)
	check("List", err)
	check("Retry", q.Retry(bg, id))
	check("Delete", q.Delete(bg, id))
	_, err = q.Stats(bg)
	check("Stats", err)
}

// patternReader yields n pseudo-random bytes without holding them, and
// hashes what it gave.
type patternReader struct {
	n     int64
	state uint64
	sum   interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		r.state = r.state*6364136223846793005 + 1442695040888963407
		p[i] = byte(r.state >> 56)
	}
	r.n -= int64(len(p))
	r.sum.Write(p)
	return len(p), nil
}

func testLargeBody(t *testing.T, q queue.Queue) {
	const size = 20 << 20
	src := &patternReader{n: size, state: 1, sum: sha256.New()}
	id, err := q.Enqueue(bg, sampleEnvelope(), src)
	if err != nil {
		t.Fatal(err)
	}
	if e := get(t, q, id); e.Size != size {
		t.Fatalf("Size = %d, want %d", e.Size, size)
	}
	r, err := q.Body(bg, id)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		t.Fatal(err)
	}
	if n != size || !bytes.Equal(h.Sum(nil), src.sum.Sum(nil)) {
		t.Fatalf("the %d-octet body came back as %d octets with another hash", size, n)
	}
}

func testConcurrentEnqueue(t *testing.T, q queue.Queue) {
	const goroutines, each = 32, 4
	type result struct {
		id   queue.ID
		body string
		err  error
	}
	results := make(chan result, goroutines*each)
	var wg sync.WaitGroup
	for g := 0; g < goroutines; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				body := strings.Repeat(fmt.Sprintf("goroutine %d message %d\r\n", g, i), 1+g*i)
				id, err := q.Enqueue(bg, oneRcpt(fmt.Sprintf("g%d-%d@example.com", g, i)), strings.NewReader(body))
				results <- result{id, body, err}
			}
		}()
	}
	wg.Wait()
	close(results)
	bodies := map[queue.ID]string{}
	for r := range results {
		if r.err != nil {
			t.Fatalf("Enqueue: %v", r.err)
		}
		if !queue.ValidID(string(r.id)) {
			t.Fatalf("invalid ID %q", r.id)
		}
		if _, dup := bodies[r.id]; dup {
			t.Fatalf("ID %s returned twice", r.id)
		}
		bodies[r.id] = r.body
	}
	list, err := q.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(bodies) {
		t.Fatalf("List has %d entries, want %d", len(list), len(bodies))
	}
	for i, e := range list {
		if i > 0 && e.Created.Before(list[i-1].Created) {
			t.Fatalf("List is not oldest first: %s (%v) after %s (%v)", e.ID, e.Created, list[i-1].ID, list[i-1].Created)
		}
		want, ok := bodies[e.ID]
		if !ok {
			t.Fatalf("List has %s, which no Enqueue returned", e.ID)
		}
		if got := ReadBody(t, q, e.ID); string(got) != want {
			t.Fatalf("body of %s is %d octets, want %d", e.ID, len(got), len(want))
		}
	}
}
