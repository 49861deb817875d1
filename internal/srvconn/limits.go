package srvconn

import "time"

// Default sets *v to d when it is not positive: a limit's zero value means
// its default.
func Default[T int | int64 | time.Duration](v *T, d T) {
	if *v <= 0 {
		*v = d
	}
}

// LoginDelay is an AuthFailureDelay setting as Backoff takes it: 0 means
// one second, a negative value none.
func LoginDelay(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return time.Second
	case d < 0:
		return 0
	}
	return d
}
