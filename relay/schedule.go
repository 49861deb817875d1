package relay

import (
	"math/rand/v2"
	"time"
)

// backoff is the wait before the attempt after the n-th (n >= 1):
// BackoffMin doubled per attempt, capped at BackoffMax, less a random part
// of up to half ("equal jitter"), so the first retry comes within
// BackoffMin and messages deferred together spread out.
func (r *Relay) backoff(n int) time.Duration {
	d := r.o.BackoffMin
	for i := 1; i < n && d < r.o.BackoffMax; i++ {
		d *= 2
	}
	d = min(d, r.o.BackoffMax)
	return d - time.Duration(rand.Int64N(int64(d/2)+1))
}
