package embedded

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/queue/queuetest"
)

var bg = context.Background()

func open(t testing.TB, dir string, opts *Options) *Queue {
	t.Helper()
	q, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func TestConformance(t *testing.T) {
	queuetest.Run(t, func(t *testing.T) queue.Queue { return open(t, t.TempDir(), nil) })
}

func env(key string) *queue.Envelope {
	return &queue.Envelope{From: "s@example.org", EnvID: key,
		Recipients: []queue.Recipient{{Addr: "a@example.com"}, {Addr: "b@example.net"}}}
}

// bodyFor derives a message's body from its key, so that whoever reads
// the queue can check it whole.
func bodyFor(key string) string {
	n := 1 + len(key)*37%200
	return strings.Repeat("body of "+key+"\r\n", n) + "end " + key
}

func TestReopen(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, nil)
	var ids []queue.ID
	for i := 0; i < 5; i++ {
		key := fmt.Sprint("m", i)
		id, err := q.Enqueue(bg, env(key), strings.NewReader(bodyFor(key)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	es, err := q.Claim(bg, 2, time.Hour)
	if err != nil || len(es) != 2 {
		t.Fatalf("Claim: %v, %v", es, err)
	}
	next := time.Now().Add(time.Hour).Truncate(time.Second)
	if err := q.Record(bg, es[0].Lease, &queue.Attempt{NextAttempt: next,
		Recipients: map[int]queue.RecipientUpdate{0: {Status: queue.Delivered}}}); err != nil {
		t.Fatal(err)
	}
	if err := q.Complete(bg, es[1].Lease); err != nil {
		t.Fatal(err)
	}
	before, err := q.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	q = open(t, dir, nil)
	after, err := q.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 4 || len(before) != 4 {
		t.Fatalf("%d entries before Close, %d after, want 4", len(before), len(after))
	}
	for i, e := range after {
		b := before[i]
		if e.ID != b.ID || e.Attempts != b.Attempts || !e.NextAttempt.Equal(b.NextAttempt) ||
			e.Recipients[0].Status != b.Recipients[0].Status || !e.Created.Equal(b.Created) {
			t.Fatalf("entry changed across reopen:\n%+v\n%+v", b, e)
		}
		if got := string(queuetest.ReadBody(t, q, e.ID)); got != bodyFor(e.EnvID) {
			t.Fatalf("body of %s changed across reopen", e.ID)
		}
	}
	if _, err := q.Get(bg, ids[1]); !errors.Is(err, queue.ErrNotFound) {
		t.Fatalf("completed entry after reopen: %v", err)
	}
	// The lease on es[0] died with the process that held it, and the
	// two entries never claimed are due: a restart makes them claimable
	// at once. es[0] was recorded for an hour from now.
	got, err := q.Claim(bg, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("claimed %d entries after reopen, want 3", len(got))
	}
	if q.Syncs() != 0 {
		t.Fatalf("a fresh Open reports %d syncs", q.Syncs())
	}
}

func TestSecondOpen(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, nil)
	start := time.Now()
	_, err := Open(dir, nil)
	if err == nil {
		t.Fatal("a second Open of the same directory succeeded")
	}
	var me *mailsec.Error
	if !errors.As(err, &me) || me.Code != mailsec.Config || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second Open: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("second Open took %v", d)
	}
}

// A body without an entry was never acknowledged and goes; an entry
// without a body is reported and not delivered, but stays for an
// operator to see and delete.
func TestOpenRepairs(t *testing.T) {
	dir := t.TempDir()
	q := open(t, dir, nil)
	lost, err := q.Enqueue(bg, env("lost"), strings.NewReader(bodyFor("lost")))
	if err != nil {
		t.Fatal(err)
	}
	kept, err := q.Enqueue(bg, env("kept"), strings.NewReader(bodyFor("kept")))
	if err != nil {
		t.Fatal(err)
	}
	q.Close()
	if err := os.Remove(filepath.Join(dir, "msg", string(lost))); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"tmp/partial", "msg/unacknowledged"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	var logs bytes.Buffer
	q = open(t, dir, &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	for _, f := range []string{"tmp/partial", "msg/unacknowledged"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s survived Open: %v", f, err)
		}
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), string(lost)) {
		t.Errorf("the entry without a body was not reported; log:\n%s", logs.String())
	}
	es, err := q.Claim(bg, 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].ID != kept {
		t.Fatalf("claimed %v, want only %s", es, kept)
	}
	if _, err := q.Get(bg, lost); err != nil {
		t.Fatalf("the entry without a body is gone from the index: %v", err)
	}
	if err := q.Delete(bg, lost); err != nil {
		t.Fatalf("Delete of the entry without a body: %v", err)
	}
}

// killDirEnv makes the test binary the child of TestKill9; its value is
// the queue directory.
const killDirEnv = "MAILSEC_QUEUE_KILL_DIR"

// TestHelperProcess is the child of TestKill9: it enqueues from several
// goroutines as fast as it can and prints "E id key" once Enqueue has
// returned; one more goroutine claims, records and completes, and
// prints "R id" or "C id" once that has returned, and "c id" before a
// Complete (which the kill may cut after the commit and before "C").
// It runs until killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(killDirEnv)
	if dir == "" {
		t.Skip("only run by TestKill9")
	}
	// Should the parent die without killing us.
	time.AfterFunc(time.Minute, func() { os.Exit(3) })
	q, err := Open(dir, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var out sync.Mutex
	say := func(format string, args ...any) {
		line := fmt.Sprintf(format+"\n", args...)
		out.Lock()
		// One write per line: a line is either in the pipe whole or not.
		os.Stdout.WriteString(line)
		out.Unlock()
	}
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	pid := os.Getpid()
	for g := 0; g < 8; g++ {
		go func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("p%dg%di%d", pid, g, i)
				id, err := q.Enqueue(bg, env(key), strings.NewReader(bodyFor(key)))
				if err != nil {
					fail(err)
				}
				say("E %s %s", id, key)
			}
		}()
	}
	for n := 0; ; n++ {
		es, err := q.Claim(bg, 16, time.Minute)
		if err != nil {
			fail(err)
		}
		for _, e := range es {
			if n%2 == 0 {
				say("c %s", e.ID)
				if err := q.Complete(bg, e.Lease); err != nil {
					fail(err)
				}
				say("C %s", e.ID)
				continue
			}
			err := q.Record(bg, e.Lease, &queue.Attempt{NextAttempt: time.Now().Add(time.Hour),
				Recipients: map[int]queue.RecipientUpdate{0: {Status: queue.Delivered}}})
			if err != nil {
				fail(err)
			}
			say("R %s", e.ID)
		}
		time.Sleep(time.Millisecond)
	}
}

// kill -9 while enqueueing and delivering: every message acknowledged
// before the kill is there whole, every completion acknowledged is
// final, and nothing in the queue is corrupt.
func TestKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	keys := map[queue.ID]string{}
	recorded := map[queue.ID]bool{}
	completed := map[queue.ID]bool{}
	completing := map[queue.ID]bool{}
	for round := 0; round < 5; round++ {
		child := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
		child.Env = append(os.Environ(), killDirEnv+"="+dir)
		child.Stderr = os.Stderr
		out, err := child.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := child.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { child.Process.Kill(); child.Wait() })
		killAt := 50 + rand.IntN(500)
		enqueued := 0
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			switch {
			case len(f) == 3 && f[0] == "E":
				keys[queue.ID(f[1])] = f[2]
				if enqueued++; enqueued == killAt {
					if err := child.Process.Kill(); err != nil {
						t.Fatal(err)
					}
				}
			case len(f) == 2 && f[0] == "R":
				recorded[queue.ID(f[1])] = true
			case len(f) == 2 && f[0] == "C":
				completed[queue.ID(f[1])] = true
			case len(f) == 2 && f[0] == "c":
				completing[queue.ID(f[1])] = true
			default:
				t.Fatalf("child printed %q", sc.Text())
			}
		}
		err = child.Wait()
		if enqueued < killAt {
			t.Fatalf("round %d: the child stopped by itself after %d messages: %v", round, enqueued, err)
		}
		// What ended it was the SIGKILL, not an exit of its own between
		// two lines.
		if ws, ok := child.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the child was not killed by SIGKILL: %v", round, err)
		}
		checkAfterKill(t, dir, keys, recorded, completed, completing)
		t.Logf("round %d: killed after %d acknowledged messages; %d acknowledged, %d completed in all",
			round, enqueued, len(keys), len(completed))
	}
}

func checkAfterKill(t *testing.T, dir string, keys map[queue.ID]string, recorded, completed, completing map[queue.ID]bool) {
	t.Helper()
	var logs bytes.Buffer
	q, err := Open(dir, &Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	list, err := q.List(bg)
	if err != nil {
		t.Fatal(err)
	}
	present := map[queue.ID]bool{}
	for _, e := range list {
		present[e.ID] = true
		if completed[e.ID] {
			t.Errorf("%s was completed but is back", e.ID)
		}
		if k, ok := keys[e.ID]; ok && k != e.EnvID {
			t.Errorf("%s has key %q, was enqueued with %q", e.ID, e.EnvID, k)
		}
		if recorded[e.ID] && (e.Attempts < 1 || e.Recipients[0].Status != queue.Delivered) {
			t.Errorf("%s lost its recorded attempt: %+v", e.ID, e)
		}
		// Unacknowledged entries may be there too; whole, like the others.
		if got := string(queuetest.ReadBody(t, q, e.ID)); got != bodyFor(e.EnvID) || e.Size != int64(len(got)) {
			t.Errorf("%s: body of %d octets (entry says %d) does not match its key %q", e.ID, len(got), e.Size, e.EnvID)
		}
	}
	for id := range keys {
		if !present[id] && !completing[id] {
			t.Errorf("acknowledged message %s is lost", id)
		}
	}
	bodies, err := os.ReadDir(filepath.Join(dir, "msg"))
	if err != nil {
		t.Fatal(err)
	}
	if len(bodies) != len(list) {
		t.Errorf("%d bodies in msg/ for %d entries", len(bodies), len(list))
	}
	if strings.Contains(logs.String(), "level=ERROR") {
		t.Errorf("Open found damage:\n%s", logs.String())
	}
	if tmp, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(tmp) != 0 {
		t.Errorf("%d files left in tmp/", len(tmp))
	}
	if t.Failed() {
		t.FailNow()
	}
}

// BenchmarkEnqueue measures Enqueue of 4 KiB bodies from several
// goroutines at once, as many SMTP sessions do, and reports the fsyncs
// each message cost.
func BenchmarkEnqueue(b *testing.B) {
	body := bytes.Repeat([]byte("0123456789abcdef"), 4096/16)
	for _, n := range []int{1, 8, 64} {
		b.Run(fmt.Sprint("goroutines=", n), func(b *testing.B) {
			q := open(b, b.TempDir(), nil)
			e := env("bench")
			var left atomic.Int64
			left.Store(int64(b.N))
			var wg sync.WaitGroup
			b.SetBytes(int64(len(body)))
			b.ResetTimer()
			start := time.Now()
			for g := 0; g < n; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for left.Add(-1) >= 0 {
						if _, err := q.Enqueue(bg, e, bytes.NewReader(body)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(q.Syncs())/float64(b.N), "fsyncs/msg")
		})
	}
}
