// Command smtpsend compares SMTP clients: each sends -n messages of -size
// octets over one STARTTLS session to the same in-process-built sink
// (emersion/go-smtp's server with a discard backend), and the throughput is
// printed as a Markdown table beside Go's net/smtp.
//
//	go run ./bench/smtpsend -n 2000 -size 4096 -rtt 0,1ms
//
// Loopback has almost no latency, which hides what PIPELINING saves, so
// -rtt adds a simulated round-trip time to every reply (see bench/sink).
// The sink runs in a child process so that the client's allocations and CPU
// are measured alone; -inproc runs it in this process instead.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/mailsec/mailsec/bench"
	"github.com/mailsec/mailsec/bench/sink"
)

func main() {
	sink.RunChildIfRequested()
	n := flag.Int("n", 2000, "messages per client, over one session")
	size := flag.Int("size", 4096, "message size in octets")
	rtts := flag.String("rtt", "0,1ms", "comma-separated simulated round-trip times added to the sink's replies")
	inproc := flag.Bool("inproc", false, "run the sink in this process (allocation counts then include the server)")
	chunking := flag.String("chunking", "both", "sink CHUNKING: offered, hidden or both (go-smtp's server always offers it; hidden puts a filter in front)")
	flag.Parse()

	var list []time.Duration
	for _, s := range strings.Split(*rtts, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			fatal(fmt.Errorf("-rtt: %v", err))
		}
		list = append(list, d)
	}
	var hides []bool
	switch *chunking {
	case "offered":
		hides = []bool{false}
	case "hidden":
		hides = []bool{true}
	case "both":
		hides = []bool{false, true}
	default:
		fatal(fmt.Errorf("-chunking must be offered, hidden or both"))
	}

	msg := bench.Message(*size)
	fmt.Printf("%d messages of %d octets per client, one STARTTLS session each (TLS 1.3), %s, %s/%s, sink in %s.\n\n",
		*n, *size, runtime.Version(), runtime.GOOS, runtime.GOARCH, map[bool]string{true: "this process", false: "a child process"}[*inproc])
	fmt.Println("rtt: the sink delays each octet it sends by this much (a delay line on its socket; client-to-server is not delayed), so each request/reply round trip costs rtt. rtt=0 is raw loopback.")
	fmt.Println("sink: go-smtp's server advertises PIPELINING, 8BITMIME and always CHUNKING; \"CHUNKING hidden\" puts a filter in front that removes CHUNKING from EHLO (and terminates TLS itself, one extra in-process hop), so compare rows within the same sink.")
	fmt.Println("allocs/msg and bytes/msg: heap allocations of this process during the timed loop divided by messages (the client only, unless -inproc).")
	fmt.Println()
	fmt.Println("| rtt | sink | client | transfer | msgs/s | MB/s | allocs/msg | bytes/msg | relative to net/smtp |")
	fmt.Println("|---|---|---|---|---:|---:|---:|---:|---:|")
	for _, rtt := range list {
		for _, hide := range hides {
			cfg := sink.Config{RTT: rtt, HideChunking: hide}
			start := sink.Spawn
			if *inproc {
				start = sink.Start
			}
			s, err := start(cfg)
			if err != nil {
				fatal(err)
			}
			sinkName := "CHUNKING offered"
			if hide {
				sinkName = "CHUNKING hidden"
			}
			var base float64
			sent := int64(0)
			for _, c := range bench.Clients {
				if hide && (c.Name == "emersion/go-smtp" || c.Name == "mailsec, Size hint") {
					continue // neither changes without CHUNKING: nothing new to see
				}
				if !hide && c.Name == "mailsec, SendBatch" {
					continue // with CHUNKING, SendBatch is Send message by message
				}
				r, err := run(c, s, msg, *n)
				if err != nil {
					fatal(fmt.Errorf("%s (%v): %v", c.Name, cfg, err))
				}
				sent += int64(*n) + 1
				if c.Name == "net/smtp" {
					base = r.rate
				}
				rel := "1.00x"
				if c.Name != "net/smtp" && base > 0 {
					rel = fmt.Sprintf("%.2fx", r.rate/base)
				}
				fmt.Printf("| %v | %s | %s | %s | %.0f | %.2f | %.1f | %.0f | %s |\n",
					rtt, sinkName, c.Name, r.transfer, r.rate, r.rate*float64(*size)/1e6, r.allocs, r.bytes, rel)
			}
			st, err := s.Close()
			if err != nil {
				fatal(err)
			}
			if st.Messages != sent {
				fatal(fmt.Errorf("sink (%v) received %d messages, clients sent %d", cfg, st.Messages, sent))
			}
		}
	}
}

type result struct {
	rate, allocs, bytes float64
	transfer            string
}

// run dials one session, sends one untimed message to warm it up, then
// times n messages.
func run(c bench.Client, s *sink.Sink, msg []byte, n int) (result, error) {
	snd, err := c.Dial(s, int64(len(msg)))
	if err != nil {
		return result{}, err
	}
	if err := snd.Send(bytes.NewReader(msg)); err != nil {
		return result{}, err
	}
	rd := bytes.NewReader(msg)
	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	var t0 time.Time
	if bs, ok := snd.(bench.BatchSender); ok {
		rs := make([]io.Reader, n)
		for i := range rs {
			rs[i] = bytes.NewReader(msg)
		}
		t0 = time.Now()
		if err := bs.SendBatch(rs); err != nil {
			return result{}, err
		}
	} else {
		t0 = time.Now()
		for i := 0; i < n; i++ {
			rd.Reset(msg)
			if err := snd.Send(rd); err != nil {
				return result{}, fmt.Errorf("message %d: %v", i, err)
			}
		}
	}
	el := time.Since(t0)
	runtime.ReadMemStats(&m1)
	r := result{
		rate:     float64(n) / el.Seconds(),
		allocs:   float64(m1.Mallocs-m0.Mallocs) / float64(n),
		bytes:    float64(m1.TotalAlloc-m0.TotalAlloc) / float64(n),
		transfer: bench.Transfer(snd),
	}
	if err := snd.Quit(); err != nil {
		return r, fmt.Errorf("QUIT: %v", err)
	}
	return r, nil
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "smtpsend:", err)
	os.Exit(1)
}
