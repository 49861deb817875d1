// Command relay compares mailsec serve and Postfix as outbound relays
// in one run: each accepts -n messages of -size octets from -sessions
// concurrent STARTTLS sessions, queues every message durably (fsync
// before the 250) and delivers it over SMTP to the same sink:
//
//	go run ./bench/relay                      # both, Postfix when root and installed
//	go run ./bench/relay -postfix=false       # mailsec only
//	go run ./bench/relay -profile /tmp/prof   # CPU profile of mailsec serve
//
// mailsec serve runs in a child process (this program's executable, see
// child.go): server.Start with a submission listener, the embedded queue
// and a route sending sink.test to the sink with TLS policy may; the
// sessions authenticate (AUTH, the strongest mechanism offered, before
// the clock starts). Postfix is a private instance
// (postfix.go: its own config and queue directories, default queue
// settings) whose smtpd relays for 127.0.0.0/8 without AUTH and sends
// everything to relayhost = [sink]; needs root.
//
// The sink is bench/sink's emersion/go-smtp server in this process with
// its default configuration: STARTTLS, PIPELINING and CHUNKING offered, a
// self-signed certificate (which policy may does not check). Every
// message carries an X-Bench header with a unique ID and the time its
// submission began, written as the client reads the message; the sink
// stamps its arrival. Reported, as medians over -runs runs in which the
// relays take turns: messages/s from the first submission to the last
// arrival, messages/s of the submissions alone, the 50th and 99th
// percentile of submission-to-arrival latency, and the sync system calls
// (fsync, fdatasync, sync_file_range) per message of all the relay's
// processes, counted with perf stat on the syscall tracepoints during the
// measured runs (and its CPU time per message), or with strace -f -c in a
// separate counting run when perf cannot (strace slows the traced
// process, so that run's rates are not reported).
package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/mailsec/mailsec/bench"
	"github.com/mailsec/mailsec/bench/sink"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/smtp"
	"github.com/mailsec/mailsec/tlsconf"
)

// sinkDomain is the recipient domain, routed to the sink by both relays.
const sinkDomain = "sink.test"

// The envelope of every message.
const (
	mailFrom = "bench@localhost"
	rcptTo   = "sink@" + sinkDomain
)

// relayTarget is one relay under test.
type relayTarget struct {
	name, form string
	addrs      []string // submission sessions are spread over these
	roots      *x509.CertPool
	auth       *sasl.Credentials
	pids       func() []int // the processes whose syncs count
	queued     func() int   // messages still in its queue
	// pg and db: the PostgreSQL queue of the -pg rows, whose server's
	// syncs, CPU, WAL flushes and connections are counted too.
	pg *pgCluster
	db string
}

// runResult is one relay's measurements in one run.
type runResult struct {
	e2e, submit float64 // messages/s
	p50, p99    time.Duration
	syncsPerMsg float64 // -1 when not counted
	cpuPerMsg   float64 // microseconds, -1 when not counted
	transfer    string
	// PostgreSQL rows only (else -1): the server's sync calls and CPU
	// per message, WAL octets per message, and the nodes'
	// connections at the end of the run.
	pgSyncsPerMsg, pgCPUPerMsg, walBytesPerMsg float64
	pgConns                                    int
	// CPU of everything (relay, PostgreSQL, this process's client and
	// sink) over the run's wall time and all CPUs, in percent.
	busy float64
}

func main() {
	runChildIfRequested()
	n := flag.Int("n", 2000, "messages per relay and run")
	size := flag.Int("size", 4096, "message size in octets")
	sessions := flag.Int("sessions", 4, "concurrent submission sessions")
	runs := flag.Int("runs", 3, "runs; the table shows medians")
	batch := flag.Int("batch", 20, "messages per SendBatch call (with CHUNKING SendBatch sends them one by one, as Send)")
	okPF, whyNot := postfixAvailable()
	withPostfix := flag.Bool("postfix", okPF, "include a private Postfix (on by default when running as root with postfix installed)")
	pfChunking := flag.Bool("postfix-chunking", false, "let the Postfix smtpd announce CHUNKING; off by default, so that the client pipelines DATA with SendBatch, since with BDAT Postfix's replies are held back about 40 ms each (see the README's smtpserve results)")
	countWith := flag.String("count", "auto", "how sync calls are counted: perf (during the measured runs), strace (in an extra run), auto")
	profile := flag.String("profile", "", "directory for CPU and allocation profiles of the mailsec server process")
	timeout := flag.Duration("timeout", 5*time.Minute, "longest wait for a run's deliveries")
	withPG := flag.Bool("pg", false, "add rows for mailsec serve with the postgres queue backend: a private PostgreSQL cluster (initdb; as the postgres user when root) and, per -nodes entry, that many mailsec serve processes on one database of it, the sessions spread over them")
	nodesFlag := flag.String("nodes", "1,2,3", "with -pg: node counts, one row each")
	pgSync := flag.String("pg-synchronous-commit", "", "with -pg: synchronous_commit for the nodes' sessions (diagnosis only: \"off\" shows what the WAL flush before the 250 costs, and gives up the durability the 250 promises); empty: the queue's own (on)")
	flag.Parse()
	var nodeCounts []int
	if *withPG {
		for _, f := range strings.Split(*nodesFlag, ",") {
			k, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || k < 1 {
				fatal(fmt.Errorf("-nodes: %q is not a list of positive counts", *nodesFlag))
			}
			nodeCounts = append(nodeCounts, k)
		}
	}
	if *n < 1 || *sessions < 1 || *runs < 1 || *batch < 1 {
		fatal(errors.New("-n, -sessions, -runs and -batch must be positive"))
	}
	tool, err := counterTool(*countWith)
	if err != nil {
		fmt.Fprintln(os.Stderr, "relay: no sync counts:", err)
	}

	rec := newRecorder()
	sk, err := sink.Start(sink.Config{OnMessage: rec.arrived})
	if err != nil {
		fatal(err)
	}
	atExit(func() { sk.Close() })
	defer runCleanups()
	ms, err := spawnMailsec(sk.Addr, *profile)
	if err != nil {
		fatal(err)
	}
	atExit(ms.close)
	targets := []relayTarget{ms.target}
	if *withPG {
		var dbs []string
		for i := range nodeCounts {
			dbs = append(dbs, fmt.Sprintf("mailsec%d", i+1))
		}
		pg, err := startPG(dbs)
		if err == nil && *pgSync != "" {
			pg.extraDSN = " synchronous_commit=" + *pgSync
		}
		if err != nil {
			fatal(fmt.Errorf("-pg: %v", err))
		}
		atExit(pg.stop)
		for i, k := range nodeCounts {
			t, err := spawnPGNodes(sk.Addr, pg, dbs[i], k)
			if err != nil {
				fatal(err)
			}
			targets = append(targets, t)
		}
	}
	if *withPostfix {
		if !okPF {
			fatal(errors.New("-postfix: " + whyNot))
		}
		pf, err := startPostfix(sk.Addr, *pfChunking)
		if err != nil {
			fatal(err)
		}
		atExit(pf.stop)
		form := "queue file, fsync before 250; STARTTLS, no AUTH (mynetworks)"
		if !*pfChunking {
			form += ", CHUNKING hidden"
		}
		targets = append(targets, relayTarget{
			name: "Postfix " + pf.version, form: form, addrs: []string{pf.addr}, roots: pf.roots,
			pids: pf.pids, queued: pf.queued,
		})
	}

	fmt.Printf("%d messages of %d octets per relay and run from %d concurrent sessions (STARTTLS, TLS 1.3), SendBatch of %d;\n", *n, *size, *sessions, *batch)
	fmt.Printf("each queued with fsync before the 250 and relayed over SMTP to a go-smtp sink in this process (STARTTLS and CHUNKING offered, TLS policy may).\n")
	fmt.Printf("%s, %s/%s, %d CPUs; relays in separate processes; medians of %d runs, the relays taking turns in each.\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *runs)
	if !*withPostfix && !okPF {
		fmt.Printf("Postfix skipped: %s.\n", whyNot)
	}
	switch tool {
	case "perf":
		fmt.Println("Sync calls (fsync, fdatasync, sync_file_range) and CPU time: perf stat on the syscall tracepoints, attached to each relay's processes during the measured runs.")
	case "strace":
		fmt.Println("Sync calls (fsync, fdatasync, sync_file_range): strace -f -c in one extra run per relay, whose rates are not reported.")
	}
	if *withPG {
		fmt.Printf("PostgreSQL rows: one private cluster (fsync on, synchronous_commit on, default WAL settings, wal_sync_method fdatasync), one database per row; PG syncs and CPU: perf stat on all postgres processes; WAL/msg: pg_current_wal_lsn difference; conns: the nodes' backends at the end of the run; busy: CPU of relay + PostgreSQL + this process (client, sink) over wall time and %d CPUs.\n", runtime.NumCPU())
	}
	fmt.Println()

	msg := bench.Message(*size - headerLen)
	results := make([][]runResult, len(targets))
	for run := range *runs {
		for i, t := range targets {
			r, err := measure(t, rec, run*len(targets)+i, *n, *sessions, *batch, msg, tool == "perf", *timeout)
			if err != nil {
				fatal(fmt.Errorf("%s, run %d: %v", t.name, run+1, err))
			}
			results[i] = append(results[i], r)
			time.Sleep(time.Second) // let idle sessions close
		}
	}
	if tool == "strace" {
		for i, t := range targets {
			c, err := countRun(t, rec, *runs*len(targets)+i, *n, *sessions, *batch, msg, *timeout)
			if err != nil {
				fatal(fmt.Errorf("%s, strace run: %v", t.name, err))
			}
			for j := range results[i] {
				results[i][j].syncsPerMsg = c
			}
		}
	}

	fmt.Println("| relay | form | transfer | msgs/s end-to-end | submit msgs/s | p50 latency | p99 latency | fsyncs/msg | relay CPU per msg | PG syncs/msg | WAL/msg | PG CPU per msg | PG conns | CPU busy | relative to Postfix |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	base := 0.0
	if *withPostfix {
		base = median(results[len(targets)-1], func(r runResult) float64 { return r.e2e })
	}
	for i, t := range targets {
		rs := results[i]
		e2e := median(rs, func(r runResult) float64 { return r.e2e })
		rel := "-"
		if base > 0 {
			rel = fmt.Sprintf("%.2fx", e2e/base)
		}
		syncs, cpu := "-", "-"
		if v := median(rs, func(r runResult) float64 { return r.syncsPerMsg }); v >= 0 {
			syncs = fmt.Sprintf("%.2f", v)
		}
		if v := median(rs, func(r runResult) float64 { return r.cpuPerMsg }); v >= 0 {
			cpu = fmt.Sprintf("%.0f µs", v)
		}
		pgs, wals, pgcpu, conns := "-", "-", "-", "-"
		if v := median(rs, func(r runResult) float64 { return r.pgSyncsPerMsg }); v >= 0 {
			pgs = fmt.Sprintf("%.2f", v)
		}
		if v := median(rs, func(r runResult) float64 { return r.walBytesPerMsg }); v >= 0 {
			wals = fmt.Sprintf("%.1f KB", v/1000)
		}
		if v := median(rs, func(r runResult) float64 { return r.pgCPUPerMsg }); v >= 0 {
			pgcpu = fmt.Sprintf("%.0f µs", v)
		}
		if v := median(rs, func(r runResult) float64 { return float64(r.pgConns) }); v >= 0 {
			conns = fmt.Sprintf("%.0f", v)
		}
		busy := "-"
		if v := median(rs, func(r runResult) float64 { return r.busy }); v >= 0 {
			busy = fmt.Sprintf("%.0f%%", v)
		}
		fmt.Printf("| %s | %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t.name, t.form, rs[0].transfer, e2e,
			median(rs, func(r runResult) float64 { return r.submit }),
			ms1(median(rs, func(r runResult) float64 { return float64(r.p50) })),
			ms1(median(rs, func(r runResult) float64 { return float64(r.p99) })),
			syncs, cpu, pgs, wals, pgcpu, conns, busy, rel)
	}
	fmt.Println("\nper run (end-to-end msgs/s; submit msgs/s; p99; fsyncs/msg; PG syncs/msg; WAL octets/msg; CPU busy):")
	for i, t := range targets {
		var parts []string
		for _, r := range results[i] {
			parts = append(parts, fmt.Sprintf("%.0f; %.0f; %s; %.2f; %.2f; %.0f; %.0f%%", r.e2e, r.submit, ms1(float64(r.p99)), r.syncsPerMsg, r.pgSyncsPerMsg, r.walBytesPerMsg, r.busy))
		}
		fmt.Printf("  %s: %s\n", t.name, strings.Join(parts, " | "))
	}
}

// ms1 formats nanoseconds as milliseconds.
func ms1(ns float64) string { return fmt.Sprintf("%.1f ms", ns/1e6) }

// median returns the median of f over rs.
func median(rs []runResult, f func(runResult) float64) float64 {
	v := make([]float64, len(rs))
	for i, r := range rs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v) == 0 {
		return 0
	}
	return v[len(v)/2]
}

// measure runs one relay's turn: it dials the sessions (STARTTLS, AUTH)
// before the clock starts, submits n messages, waits until the sink has
// them all and the relay's queue is empty, and counts the relay's sync
// calls with perf over all of that when count is set.
func measure(t relayTarget, rec *recorder, tag, n, sessions, batch int, msg []byte, count bool, timeout time.Duration) (runResult, error) {
	res := runResult{syncsPerMsg: -1, cpuPerMsg: -1, pgSyncsPerMsg: -1, pgCPUPerMsg: -1, walBytesPerMsg: -1, pgConns: -1, busy: -1}
	clients, err := dialAll(t, sessions)
	if err != nil {
		return res, err
	}
	var ctr, pgCtr *syncCounter
	if count {
		if ctr, err = startCounting("perf", t.pids()); err != nil {
			return res, err
		}
		if t.pg != nil {
			if pgCtr, err = startCounting("perf", t.pg.pids()); err != nil {
				ctr.stop()
				return res, err
			}
		}
	}
	var walMark string
	if t.pg != nil {
		walMark = t.pg.markWAL()
	}
	self0 := selfCPU()
	rec.reset(n)
	start := time.Now()
	submitEnd, err := submit(clients, tag, n, batch, msg)
	if err != nil {
		if ctr != nil {
			ctr.stop()
		}
		if pgCtr != nil {
			pgCtr.stop()
		}
		return res, err
	}
	res.transfer = transferOf(clients[0])
	for _, c := range clients {
		c.Quit(context.Background())
	}
	arrivals, err := rec.wait(timeout)
	if err == nil {
		err = waitEmpty(t, timeout)
	}
	wall := time.Since(start)
	selfMS := (selfCPU() - self0).Seconds() * 1000
	var ws walStats
	if t.pg != nil {
		ws = t.pg.readWAL(t.db, walMark)
		res.walBytesPerMsg = float64(ws.bytes) / float64(n)
		res.pgConns = ws.conns
	}
	totalMS := selfMS
	if cerr := tally(ctr, n, &res.syncsPerMsg, &res.cpuPerMsg, &totalMS); cerr != nil {
		return res, cerr
	}
	if cerr := tally(pgCtr, n, &res.pgSyncsPerMsg, &res.pgCPUPerMsg, &totalMS); cerr != nil {
		return res, cerr
	}
	if ctr != nil {
		// perf's 0.5 s attach wait lies before start: wall excludes it.
		res.busy = 100 * totalMS / (wall.Seconds() * 1000 * float64(runtime.NumCPU()))
	}
	if err != nil {
		return res, err
	}
	last := start
	lat := make([]time.Duration, 0, len(arrivals))
	for _, a := range arrivals {
		lat = append(lat, a.at.Sub(a.sent))
		if a.at.After(last) {
			last = a.at
		}
	}
	slices.Sort(lat)
	res.e2e = float64(n) / last.Sub(start).Seconds()
	res.submit = float64(n) / submitEnd.Sub(start).Seconds()
	res.p50 = lat[len(lat)/2]
	res.p99 = lat[len(lat)*99/100]
	return res, nil
}

// countRun is the extra strace run: the same load with strace -f -c
// attached to the relay's processes. It returns sync calls per message.
func countRun(t relayTarget, rec *recorder, tag, n, sessions, batch int, msg []byte, timeout time.Duration) (float64, error) {
	clients, err := dialAll(t, sessions)
	if err != nil {
		return 0, err
	}
	ctr, err := startCounting("strace", t.pids())
	if err != nil {
		return 0, err
	}
	rec.reset(n)
	_, err = submit(clients, tag, n, batch, msg)
	for _, c := range clients {
		c.Quit(context.Background())
	}
	if err == nil {
		_, err = rec.wait(timeout)
	}
	if err == nil {
		err = waitEmpty(t, timeout)
	}
	c, cerr := ctr.stop()
	if err == nil {
		err = cerr
	}
	return float64(c.syncs) / float64(n), err
}

// waitEmpty waits until the relay has removed every delivered message
// from its queue, so that the counts include the bookkeeping after the
// last delivery.
func waitEmpty(t relayTarget, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for t.queued() > 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d messages still queued after %v", t.queued(), timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// dialAll opens the submission sessions: STARTTLS with the relay's
// certificate verified, and AUTH where the relay needs it.
func dialAll(t relayTarget, k int) ([]*smtp.Client, error) {
	var out []*smtp.Client
	for i := range k {
		c, err := smtp.Dial(context.Background(), t.addrs[i%len(t.addrs)], &smtp.Options{
			TLSMode:   smtp.TLSStartTLS,
			TLS:       tlsconf.Options{RootCAs: t.roots, ServerName: "localhost"},
			Auth:      t.auth,
			LocalName: "client.example.org",
		})
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}

// submit sends n messages over the sessions, shared out evenly, each
// session in SendBatch calls of batch messages. It returns when the last
// reply has come.
func submit(clients []*smtp.Client, tag, n, batch int, msg []byte) (time.Time, error) {
	var wg sync.WaitGroup
	errs := make([]error, len(clients))
	next := 0
	for i, c := range clients {
		share := n / len(clients)
		if i < n%len(clients) {
			share++
		}
		first := next
		next += share
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := context.Background()
			for lo := first; lo < first+share; lo += batch {
				hi := min(lo+batch, first+share)
				msgs := make([]smtp.Message, 0, hi-lo)
				for j := lo; j < hi; j++ {
					msgs = append(msgs, smtp.Message{From: mailFrom, To: []string{rcptTo},
						Body: newStamped(fmt.Sprintf("%d-%d", tag, j), msg)})
				}
				for _, r := range c.SendBatch(ctx, msgs) {
					if r.Err != nil {
						errs[i] = r.Err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	return time.Now(), errors.Join(errs...)
}

// transferOf says how the session sent its messages.
func transferOf(c *smtp.Client) string {
	chunking, _ := c.Extension("CHUNKING")
	pipelining, _ := c.Extension("PIPELINING")
	t := "DATA"
	if chunking {
		t = "BDAT"
	}
	if pipelining {
		t = "PIPELINING + " + t
	}
	if c.TLS() != nil {
		t = "STARTTLS, " + t
	}
	return t
}

// The X-Bench header: a fixed width, so that every message has the same
// size; the send time is filled in when the client first reads the
// message.
const (
	headerFormat = "X-Bench: %-20s %019d\r\n"
	headerLen    = len("X-Bench: ") + 20 + 1 + 19 + 2
)

// stamped is a message reader whose X-Bench header gets the time of its
// first Read, the moment the client starts sending it.
type stamped struct {
	id   string
	body []byte
	r    *bytes.Reader
}

func newStamped(id string, body []byte) *stamped { return &stamped{id: id, body: body} }

func (s *stamped) Read(p []byte) (int, error) {
	if s.r == nil {
		h := fmt.Sprintf(headerFormat, s.id, time.Now().UnixNano())
		s.r = bytes.NewReader(append([]byte(h), s.body...))
	}
	return s.r.Read(p)
}

// arrival is one message at the sink.
type arrival struct {
	sent, at time.Time
}

// recorder collects the sink's arrivals of the current run.
type recorder struct {
	mu   sync.Mutex
	want int
	got  map[string]arrival
	done chan struct{}
}

func newRecorder() *recorder { return &recorder{got: map[string]arrival{}} }

// reset starts a run of n messages.
func (r *recorder) reset(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.want, r.got, r.done = n, make(map[string]arrival, n), make(chan struct{})
}

// arrived is the sink's OnMessage.
func (r *recorder) arrived(head []byte) {
	at := time.Now()
	i := bytes.Index(head, []byte("X-Bench: "))
	if i < 0 {
		return
	}
	fs := strings.Fields(string(head[i+len("X-Bench: ") : i+headerLen-2]))
	if len(fs) != 2 {
		return
	}
	ns, err := strconv.ParseInt(fs[1], 10, 64)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done == nil {
		return
	}
	if _, dup := r.got[fs[0]]; dup {
		return // delivered twice: counted once
	}
	r.got[fs[0]] = arrival{sent: time.Unix(0, ns), at: at}
	if len(r.got) == r.want {
		close(r.done)
	}
}

// wait returns the run's arrivals once all have come.
func (r *recorder) wait(timeout time.Duration) ([]arrival, error) {
	r.mu.Lock()
	done := r.done
	r.mu.Unlock()
	select {
	case <-done:
	case <-time.After(timeout):
		r.mu.Lock()
		defer r.mu.Unlock()
		return nil, fmt.Errorf("only %d of %d messages reached the sink within %v", len(r.got), r.want, timeout)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]arrival, 0, len(r.got))
	for _, a := range r.got {
		out = append(out, a)
	}
	return out, nil
}

// mailsecServer is the child process running mailsec serve.
type mailsecServer struct {
	target relayTarget
	close  func()
	pid    int
	caPEM  []byte
}

// tally stops ctr, when counting, and sets the sync calls and the CPU
// microseconds per message of the processes it counted, adding their CPU
// milliseconds to total. Without ctr both keep their -1 (not counted), and
// the CPU does too when perf did not measure it.
func tally(ctr *syncCounter, n int, syncs, cpuPerMsg, total *float64) error {
	if ctr == nil {
		return nil
	}
	c, err := ctr.stop()
	if err != nil {
		return err
	}
	*syncs = float64(c.syncs) / float64(n)
	if c.cpuMS >= 0 {
		*cpuPerMsg = c.cpuMS * 1000 / float64(n)
		*total += c.cpuMS
	}
	return nil
}

// spawnMailsec starts this program as a child running mailsec serve (see
// child.go) and reads its submission address, CA and queue directory.
func spawnMailsec(sinkAddr, profile string, extraEnv ...string) (*mailsecServer, error) {
	env := append([]string{childEnv + "=" + sinkAddr}, extraEnv...)
	if profile != "" {
		if err := os.MkdirAll(profile, 0o755); err != nil {
			return nil, err
		}
		env = append(env, profileEnv+"="+profile)
	}
	c, err := sink.StartChild(env...)
	if err != nil {
		return nil, err
	}
	var addr, ca, qdir string
	if _, err := fmt.Fscan(c.Out, &addr, &ca, &qdir); err != nil {
		c.Kill()
		return nil, fmt.Errorf("mailsec child: %v", err)
	}
	pool, pem, err := bench.CertPoolFile(ca)
	if err != nil {
		c.Kill()
		return nil, err
	}
	pid := c.Pid()
	return &mailsecServer{
		target: relayTarget{
			name: "mailsec serve", form: "embedded queue (bbolt + body files), fsync before 250; STARTTLS, AUTH",
			addrs: []string{addr}, roots: pool, auth: &sasl.Credentials{Username: benchUser, Password: benchPassword},
			pids:   func() []int { return []int{pid} },
			queued: func() int { return queueFiles(qdir) },
		},
		close: func() {
			c.Stop()
			io.Copy(io.Discard, c.Out)
			c.Wait()
		},
		pid: pid, caPEM: pem,
	}, nil
}

// spawnPGNodes starts k mailsec serve children on the postgres queue in
// database db, nodes "pgK-1".."pgK-k", and returns them as one target.
func spawnPGNodes(sinkAddr string, pg *pgCluster, db string, k int) (relayTarget, error) {
	t := relayTarget{
		name:  fmt.Sprintf("mailsec serve, postgres queue x%d", k),
		form:  fmt.Sprintf("PostgreSQL queue (one commit with WAL flush before 250), %d node(s) on one database; STARTTLS, AUTH", k),
		roots: x509.NewCertPool(), auth: &sasl.Credentials{Username: benchUser, Password: benchPassword},
		pg: pg, db: db,
	}
	var pids []int
	for i := range k {
		ms, err := spawnMailsec(sinkAddr, "", pgDSNEnv+"="+pg.dsn(db), fmt.Sprintf("%s=pg%d-%d", pgNodeEnv, k, i+1), "PGPASSWORD="+pg.password())
		if err != nil {
			return t, fmt.Errorf("postgres node %d of %d: %v", i+1, k, err)
		}
		atExit(ms.close)
		t.addrs = append(t.addrs, ms.target.addrs...)
		t.roots.AppendCertsFromPEM(ms.caPEM)
		pids = append(pids, ms.pid)
	}
	t.pids = func() []int { return pids }
	t.queued = func() int { return pg.queued(db) }
	return t, nil
}

// selfCPU is this process's user and system CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cleanups stop the sink, the child and Postfix, last started first;
// fatal runs them too, since os.Exit skips deferred calls and a private
// Postfix would outlive this program.
var cleanups []func()

func atExit(f func()) { cleanups = append(cleanups, f) }

func runCleanups() {
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	cleanups = nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "relay:", err)
	runCleanups()
	os.Exit(1)
}
