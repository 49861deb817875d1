package store

import (
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// namer makes Maildir file names unique on this host, in the modern form
// "<sec>.M<usec>P<pid>Q<seq>.<host>" of the Maildir specification
// (cr.yp.to/proto/maildir.html): time, process and a per-process delivery
// counter make collisions impossible without relying on randomness.
type namer struct {
	pid  string
	host string
	seq  atomic.Uint64
}

func newNamer() *namer {
	h, err := os.Hostname()
	if err != nil || h == "" {
		h = "localhost"
	}
	// The specification reserves "/" and ":" (the info separator); encode
	// them as it says.
	h = strings.NewReplacer("/", `\057`, ":", `\072`).Replace(h)
	return &namer{pid: strconv.Itoa(os.Getpid()), host: h}
}

func (n *namer) next() string {
	now := time.Now()
	var b []byte
	b = strconv.AppendInt(b, now.Unix(), 10)
	b = append(b, ".M"...)
	// Six digits, so that names of one second sort as text too.
	usec := strconv.Itoa(now.Nanosecond() / 1000)
	b = append(b, "000000"[len(usec):]...)
	b = append(b, usec...)
	b = append(b, 'P')
	b = append(b, n.pid...)
	b = append(b, 'Q')
	b = strconv.AppendUint(b, n.seq.Add(1), 10)
	b = append(b, '.')
	b = append(b, n.host...)
	return string(b)
}
