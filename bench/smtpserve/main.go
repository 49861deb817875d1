// Command smtpserve compares SMTP servers receiving mail: mailsec serve's
// SMTP server (smtpd) with a discard backend and with its Maildir store
// (fsync before 250), emersion/go-smtp's server with a discard backend
// (bench/sink), and optionally a Postfix smtpd (its queue file is fsynced
// before 250), all measured in the same run with the same client:
//
//	go run ./bench/smtpserve                  # load and DATA throughput
//	go run ./bench/smtpserve -idle 10000      # RSS with idle TLS sessions
//	bench/smtpserve/postfix.sh                # the same, plus a private Postfix
//
// Each of -c concurrent sessions does STARTTLS and sends -n messages. The
// default client is mailsec's own (PIPELINING, and BDAT where the server
// offers CHUNKING, as all of these do): it needs far less CPU per message
// than net/smtp (-client netsmtp, one command per round trip), which on a
// small machine would otherwise be what is measured. Besides msgs/s the
// table shows each server process's CPU time per message, which does not
// depend on how fast the client is. A second test sends -bign messages of
// -big octets over one session for DATA throughput (the text written in
// bulk, see throughput). The servers run in child processes (Postfix in
// its own), so that the client's CPU and garbage are not charged to them;
// on a shared machine rows are comparable only within one run, which is
// why the servers take turns within each of -runs runs.
package main

import (
	"bytes"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	netsmtp "net/smtp"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailsec/mailsec/bench"
	"github.com/mailsec/mailsec/bench/sink"
)

// target is one server under test.
type target struct {
	name    string
	backend string
	s       *sink.Sink
	pid     int // the server process, 0 when it is not one process
}

// clients are the load generators -client can pick.
var clients = map[string]func(*sink.Sink) (bench.Sender, error){
	"mailsec": bench.DialMailsec,
	"netsmtp": bench.DialNetSMTP,
}

func main() {
	sink.RunChildIfRequested()
	runChildIfRequested()
	c := flag.Int("c", 4, "concurrent sessions")
	n := flag.Int("n", 2000, "messages per session")
	size := flag.Int("size", 4096, "message size in octets")
	client := flag.String("client", "mailsec", "load generator: mailsec (PIPELINING, and BDAT where offered) or netsmtp (net/smtp, one command per round trip, DATA)")
	runs := flag.Int("runs", 3, "runs; the table shows medians")
	bigFlag := flag.String("big", "100MiB", "size of the large messages (DATA throughput test); 0 skips it")
	bigN := flag.Int("bign", 3, "large messages sent over one session")
	idle := flag.Int("idle", 0, "instead of the load tests, open this many idle TLS sessions to each server and report its RSS")
	profile := flag.String("profile", "", "directory for CPU and allocation profiles of the mailsec server process")
	postfix := flag.String("postfix", "", "host:port of a Postfix smtpd with STARTTLS to include")
	postfixCA := flag.String("postfix-ca", "", "CA file verifying the Postfix certificate (name localhost)")
	flag.Parse()
	big, err := parseSize(*bigFlag)
	if err != nil {
		fatal(fmt.Errorf("-big: %v", err))
	}
	dial, ok := clients[*client]
	if !ok {
		fatal(fmt.Errorf("-client: %q is neither mailsec nor netsmtp", *client))
	}

	gs, err := sink.Spawn(sink.Config{})
	if err != nil {
		fatal(err)
	}
	ms, err := spawnMailsec(*profile, *idle)
	if err != nil {
		fatal(err)
	}
	targets := []target{
		{"emersion/go-smtp server", "discard", gs, listenerPID(gs.Addr)},
		{"mailsec serve (smtpd)", "discard", ms.discard, ms.pid},
		{"mailsec serve (smtpd)", "Maildir, fsync before 250", ms.maildir, ms.pid},
	}
	if *postfix != "" {
		pem, err := os.ReadFile(*postfixCA)
		if err != nil {
			fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			fatal(fmt.Errorf("-postfix-ca: no certificate in %s", *postfixCA))
		}
		targets = append(targets, target{"Postfix " + postfixVersion() + " smtpd", "queue file, fsync before 250",
			&sink.Sink{Addr: *postfix, RootCAs: pool}, 0})
	}
	defer func() {
		gs.Close()
		ms.close()
	}()
	if *idle > 0 {
		runIdle(targets[:2], *idle)
		return
	}

	fmt.Printf("%d sessions x %d messages of %d octets, each session STARTTLS (TLS 1.3) first; client: %s.\n", *c, *n, *size, *client)
	if big > 0 {
		fmt.Printf("DATA throughput: %d messages of %d MiB over one STARTTLS session, the text written in bulk.\n", *bigN, big>>20)
	}
	fmt.Printf("%s, %s/%s, %d CPUs; servers in separate processes; medians of %d runs, the servers taking turns in each.\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), *runs)
	msg := bench.Message(*size)
	results := make([][]loadResult, len(targets))
	transfer := make([]string, len(targets))
	for range *runs {
		for i, t := range targets {
			r, err := load(t, dial, *c, *n, msg)
			if err != nil {
				fatal(fmt.Errorf("%s (%s): %v", t.name, t.backend, err))
			}
			transfer[i] = r.transfer
			if big > 0 {
				if r.dataMBs, err = throughput(t.s, big, *bigN); err != nil {
					fatal(fmt.Errorf("%s (%s) throughput: %v", t.name, t.backend, err))
				}
			}
			results[i] = append(results[i], r)
		}
	}
	fmt.Println("| server | backend | transfer | msgs/s | p99 latency | server CPU per msg | relative msgs/s | DATA MB/s, one session |")
	fmt.Println("|---|---|---|---:|---:|---:|---:|---:|")
	base := median(results[0], func(r loadResult) float64 { return r.rate })
	for i, t := range targets {
		rate := median(results[i], func(r loadResult) float64 { return r.rate })
		p99 := median(results[i], func(r loadResult) float64 { return float64(r.p99.Microseconds()) / 1000 })
		cpu := "-"
		if t.pid != 0 {
			cpu = fmt.Sprintf("%.0f µs", median(results[i], func(r loadResult) float64 { return r.cpuPerMsg }))
		}
		thr := "-"
		if big > 0 {
			thr = fmt.Sprintf("%.0f", median(results[i], func(r loadResult) float64 { return r.dataMBs }))
		}
		fmt.Printf("| %s | %s | %s | %.0f | %.1f ms | %s | %.2fx | %s |\n", t.name, t.backend, transfer[i], rate, p99, cpu, rate/base, thr)
	}
	fmt.Println("\nper run (msgs/s; DATA MB/s):")
	for i, t := range targets {
		var parts []string
		for _, r := range results[i] {
			parts = append(parts, fmt.Sprintf("%.0f; %.0f", r.rate, r.dataMBs))
		}
		fmt.Printf("  %s (%s): %s\n", t.name, t.backend, strings.Join(parts, " | "))
	}
}

// runIdle opens n idle TLS sessions to each target in turn and prints the
// server's RSS.
func runIdle(targets []target, n int) {
	fmt.Printf("%d idle sessions per server (EHLO, STARTTLS, TLS 1.3 handshake, then nothing); RSS of the server process. %s, %s/%s.\n\n",
		n, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Println("| server | RSS before | RSS with the sessions | per session |")
	fmt.Println("|---|---:|---:|---:|")
	for _, t := range targets {
		if t.pid == 0 {
			continue
		}
		r, err := idleSessions(t.s, t.pid, n)
		if err != nil {
			fatal(fmt.Errorf("%s: %v", t.name, err))
		}
		fmt.Printf("| %s | %.1f MiB | %.1f MiB | %.1f KiB |\n", t.name, float64(r.before)/(1<<20), float64(r.after)/(1<<20),
			float64(r.after-r.before)/float64(n)/1024)
		// Let the server notice the closed sessions before the next one.
		time.Sleep(2 * time.Second)
	}
}

type loadResult struct {
	rate      float64
	p99       time.Duration
	cpuPerMsg float64 // server CPU time per message, microseconds
	dataMBs   float64
	transfer  string
}

// median returns the median of f over rs.
func median(rs []loadResult, f func(loadResult) float64) float64 {
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

// load runs c sessions of n messages each and measures the aggregate rate,
// the 99th percentile of the per-message time (from the start of the
// transaction to its last reply) and the server's CPU time per message.
func load(t target, dial func(*sink.Sink) (bench.Sender, error), c, n int, msg []byte) (loadResult, error) {
	var wg sync.WaitGroup
	lat := make([][]time.Duration, c)
	errs := make([]error, c)
	senders := make([]bench.Sender, c)
	for i := range c {
		snd, err := dial(t.s)
		if err != nil {
			return loadResult{}, err
		}
		if err := bench.Verify(snd); err != nil {
			return loadResult{}, err
		}
		senders[i] = snd
	}
	cpu0 := cpuTicks(t.pid)
	start := time.Now()
	for i := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rd := bytes.NewReader(msg)
			for range n {
				rd.Reset(msg)
				t0 := time.Now()
				if err := senders[i].Send(rd); err != nil {
					errs[i] = err
					return
				}
				lat[i] = append(lat[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start)
	cpu1 := cpuTicks(t.pid)
	if err := errors.Join(errs...); err != nil {
		return loadResult{}, err
	}
	res := loadResult{transfer: bench.Transfer(senders[0])}
	for _, snd := range senders {
		snd.Quit()
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	res.rate = float64(len(all)) / el.Seconds()
	res.p99 = all[len(all)*99/100]
	// /proc counts in USER_HZ ticks of 10 ms.
	res.cpuPerMsg = float64(cpu1-cpu0) * 1e4 / float64(len(all))
	return res, nil
}

// throughput sends count messages of size octets over one STARTTLS
// session with DATA and returns MB/s. The message text goes to the socket
// in 256 KiB writes, not through net/smtp's octet-at-a-time dot-stuffing
// writer, which would be the bottleneck: bench.StreamMessage has no line
// that starts with a dot, so the text needs no stuffing (checked).
func throughput(s *sink.Sink, size int64, count int) (float64, error) {
	c, err := netsmtp.Dial(s.Addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.Hello("client.example.org"); err != nil {
		return 0, err
	}
	if err := c.StartTLS(s.TLSConfig()); err != nil {
		return 0, err
	}
	buf := make([]byte, 256<<10)
	t0 := time.Now()
	for range count {
		if err := c.Mail(bench.From); err != nil {
			return 0, err
		}
		if err := c.Rcpt(bench.To); err != nil {
			return 0, err
		}
		id, err := c.Text.Cmd("DATA")
		if err != nil {
			return 0, err
		}
		c.Text.StartResponse(id)
		_, _, err = c.Text.ReadResponse(354)
		c.Text.EndResponse(id)
		if err != nil {
			return 0, err
		}
		msg := bench.StreamMessage(size)
		var last []byte
		for {
			n, rerr := msg.Read(buf)
			if bytes.Contains(buf[:n], []byte("\n.")) {
				return 0, errors.New("benchmark message has a line starting with a dot")
			}
			if n > 0 {
				c.Text.W.Write(buf[:n])
				last = append(last[:0], buf[max(0, n-2):n]...)
			}
			if rerr == io.EOF {
				break
			}
			if rerr != nil {
				return 0, rerr
			}
		}
		if !bytes.HasSuffix(last, []byte("\r\n")) {
			c.Text.W.WriteString("\r\n")
		}
		c.Text.W.WriteString(".\r\n")
		if err := c.Text.W.Flush(); err != nil {
			return 0, err
		}
		if _, _, err := c.Text.ReadResponse(250); err != nil {
			return 0, err
		}
	}
	el := time.Since(t0)
	c.Quit()
	return float64(size) * float64(count) / el.Seconds() / 1e6, nil
}

// mailsecServers is the child process running mailsec's servers.
type mailsecServers struct {
	discard, maildir *sink.Sink
	pid              int
	close            func()
}

// spawnMailsec starts this program as a child running mailsec's servers
// (see child.go) and reads their addresses and CA.
func spawnMailsec(profile string, sessions int) (*mailsecServers, error) {
	env := []string{childEnv + "=1"}
	if profile != "" {
		env = append(env, profileEnv+"="+profile)
	}
	if sessions > 0 {
		env = append(env, sessionsEnv+"="+strconv.Itoa(sessions))
	}
	c, err := sink.StartChild(env...)
	if err != nil {
		return nil, err
	}
	var discard, maildir, ca string
	if _, err := fmt.Fscan(c.Out, &discard, &maildir, &ca); err != nil {
		c.Kill()
		return nil, fmt.Errorf("mailsec child: %v", err)
	}
	pool, _, err := bench.CertPoolFile(ca)
	if err != nil {
		c.Kill()
		return nil, err
	}
	return &mailsecServers{
		discard: &sink.Sink{Addr: discard, RootCAs: pool},
		maildir: &sink.Sink{Addr: maildir, RootCAs: pool},
		pid:     c.Pid(),
		close: func() {
			c.Stop()
			c.Wait()
		},
	}, nil
}

// postfixVersion is the installed Postfix's version, for the table.
func postfixVersion() string {
	out, err := exec.Command("postconf", "-d", "-h", "mail_version").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// parseSize reads "32MiB", "512KiB" or a plain number of octets.
func parseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v * mult, err
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "smtpserve:", err)
	os.Exit(1)
}
