// Command smtpserve compares SMTP servers receiving mail: mailsec serve's
// SMTP server (smtpd) with a discard backend and with its Maildir store
// (fsync before 250), emersion/go-smtp's server with a discard backend
// (bench/sink), and optionally a Postfix smtpd (its queue file is fsynced
// before 250), all measured in the same run with the same client:
//
//	go run ./bench/smtpserve -c 8 -n 300 -size 4096 -big 32MiB
//	bench/smtpserve/postfix.sh   # the same, plus a private Postfix
//
// Each of -c concurrent sessions does STARTTLS and sends -n messages with
// DATA (net/smtp: one command per round trip, the lowest common
// denominator); a second test sends -bign messages of -big octets over one
// session for DATA throughput (the text written in bulk, see throughput).
// The servers run in child processes (Postfix in its own), so that the
// client's CPU and garbage are not charged to them; on a shared machine
// rows are comparable only within one run.
package main

import (
	"bufio"
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
}

func main() {
	sink.RunChildIfRequested()
	runChildIfRequested()
	c := flag.Int("c", 8, "concurrent sessions")
	n := flag.Int("n", 300, "messages per session")
	size := flag.Int("size", 4096, "message size in octets")
	bigFlag := flag.String("big", "32MiB", "size of the large messages (DATA throughput test); 0 skips it")
	bigN := flag.Int("bign", 3, "large messages sent over one session")
	postfix := flag.String("postfix", "", "host:port of a Postfix smtpd with STARTTLS to include")
	postfixCA := flag.String("postfix-ca", "", "CA file verifying the Postfix certificate (name localhost)")
	flag.Parse()
	big, err := parseSize(*bigFlag)
	if err != nil {
		fatal(fmt.Errorf("-big: %v", err))
	}

	gs, err := sink.Spawn(sink.Config{})
	if err != nil {
		fatal(err)
	}
	ms, err := spawnMailsec()
	if err != nil {
		fatal(err)
	}
	targets := []target{
		{"emersion/go-smtp server", "discard", gs},
		{"mailsec serve (smtpd)", "discard", ms.discard},
		{"mailsec serve (smtpd)", "Maildir, fsync before 250", ms.maildir},
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
			&sink.Sink{Addr: *postfix, RootCAs: pool}})
	}

	fmt.Printf("%d sessions x %d messages of %d octets, each session STARTTLS (TLS 1.3) then DATA per message (net/smtp client);\n", *c, *n, *size)
	if big > 0 {
		fmt.Printf("throughput: %d messages of %d MiB over one session. %s, %s/%s, %d CPUs; servers in separate processes.\n\n", *bigN, big>>20, runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU())
	}
	fmt.Println("| server | backend | msgs/s | MB/s | p99 latency | relative msgs/s | DATA MB/s, one session |")
	fmt.Println("|---|---|---:|---:|---:|---:|---:|")
	msg := bench.Message(*size)
	var base float64
	for _, t := range targets {
		r, err := load(t.s, *c, *n, msg)
		if err != nil {
			fatal(fmt.Errorf("%s (%s): %v", t.name, t.backend, err))
		}
		if base == 0 {
			base = r.rate
		}
		thr := "-"
		if big > 0 {
			mbs, err := throughput(t.s, big, *bigN)
			if err != nil {
				fatal(fmt.Errorf("%s (%s) throughput: %v", t.name, t.backend, err))
			}
			thr = fmt.Sprintf("%.0f", mbs)
		}
		fmt.Printf("| %s | %s | %.0f | %.1f | %.1f ms | %.2fx | %s |\n", t.name, t.backend, r.rate, r.rate*float64(*size)/1e6,
			float64(r.p99.Microseconds())/1000, r.rate/base, thr)
	}
	if _, err := gs.Close(); err != nil {
		fatal(err)
	}
	ms.close()
}

type loadResult struct {
	rate float64
	p99  time.Duration
}

// load runs c sessions of n messages each and measures the aggregate rate
// and the 99th percentile of the per-message time (MAIL to the reply to
// the final dot).
func load(s *sink.Sink, c, n int, msg []byte) (loadResult, error) {
	var wg sync.WaitGroup
	lat := make([][]time.Duration, c)
	errs := make([]error, c)
	senders := make([]bench.Sender, c)
	for i := range c {
		snd, err := bench.DialNetSMTP(s)
		if err != nil {
			return loadResult{}, err
		}
		if err := bench.Verify(snd); err != nil {
			return loadResult{}, err
		}
		senders[i] = snd
	}
	start := time.Now()
	for i := range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rd := strings.NewReader(string(msg))
			for range n {
				rd.Reset(string(msg))
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
	if err := errors.Join(errs...); err != nil {
		return loadResult{}, err
	}
	for _, snd := range senders {
		snd.Quit()
	}
	all := slices.Concat(lat...)
	slices.Sort(all)
	return loadResult{rate: float64(len(all)) / el.Seconds(), p99: all[len(all)*99/100]}, nil
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
	close            func()
}

// spawnMailsec starts this program as a child running mailsec's servers
// (see child.go) and reads their addresses and CA.
func spawnMailsec() (*mailsecServers, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var discard, maildir, ca string
	if _, err := fmt.Fscan(bufio.NewReader(stdout), &discard, &maildir, &ca); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("mailsec child: %v", err)
	}
	pem, err := os.ReadFile(ca)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &mailsecServers{
		discard: &sink.Sink{Addr: discard, RootCAs: pool},
		maildir: &sink.Sink{Addr: maildir, RootCAs: pool},
		close: func() {
			stdin.Close()
			cmd.Wait()
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

// discardStdin waits until the parent closes the child's standard input.
func discardStdin() { io.Copy(io.Discard, os.Stdin) }
