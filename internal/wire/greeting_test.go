package wire

import (
	"testing"
	"time"
)

// The watch fires once after its delay unless stopped first, and a nil hook
// watches nothing.
func TestWatchGreeting(t *testing.T) {
	fired := make(chan time.Duration, 1)
	stop := WatchGreeting(10*time.Millisecond, func(d time.Duration) { fired <- d })
	select {
	case d := <-fired:
		if d != 10*time.Millisecond {
			t.Errorf("told %v", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the watch did not fire")
	}
	stop()
	stop = WatchGreeting(20*time.Millisecond, func(d time.Duration) { fired <- d })
	stop()
	time.Sleep(60 * time.Millisecond)
	if len(fired) != 0 {
		t.Error("the watch fired after stop")
	}
	WatchGreeting(time.Millisecond, nil)()
}
