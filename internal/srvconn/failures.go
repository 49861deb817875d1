package srvconn

import (
	"sync"
	"time"
)

// FailureWindow is how long a failed login counts against its client's
// address.
const FailureWindow = 15 * time.Minute

// maxFailureIPs bounds the addresses Failures remembers, so that a client
// with many addresses cannot make it grow without end.
const maxFailureIPs = 10000

// Failures counts failed logins per client IP address. A per-session count
// alone does not slow a guesser, who opens sessions in parallel and
// reconnects after each refusal; counting by address makes the back-off
// (Backoff) of every session from that address grow. The zero value is
// ready to use.
type Failures struct {
	mu sync.Mutex
	m  map[string]failure
}

type failure struct {
	n    int
	last time.Time
}

// Add records a failed login from ip and returns the number of failures
// from ip (its /64 for IPv6, see clientKey) within FailureWindow, this one
// included.
func (f *Failures) Add(ip string) int {
	ip = clientKey(ip)
	now := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.m == nil {
		f.m = map[string]failure{}
	}
	e, ok := f.m[ip]
	if ok && now.Sub(e.last) > FailureWindow {
		e = failure{}
	}
	if !ok && len(f.m) >= maxFailureIPs {
		for k, v := range f.m {
			if now.Sub(v.last) > FailureWindow {
				delete(f.m, k)
			}
		}
		if len(f.m) >= maxFailureIPs {
			// Under a flood from many addresses forget them all: the
			// per-session limits still hold.
			clear(f.m)
		}
	}
	e.n++
	e.last = now
	f.m[ip] = e
	return e.n
}
