package relay

import (
	"context"
	"sync"
	"time"
)

// maxUses bounds the messages one session carries, so that a long-lived
// session does not pin a destination's server for hours.
const maxUses = 100

// conns keeps idle sessions for reuse: a message to a destination that a
// session has just served goes over that session, which saves the
// connect, the greeting, EHLO and the TLS handshake (Postfix's connection
// cache does the same). Sessions idle longer than the reuse time are
// closed with QUIT.
type conns struct {
	reuse time.Duration
	mu    sync.Mutex
	idle  map[string][]*session
	timer *time.Timer
}

func newConns(reuse time.Duration) *conns {
	return &conns{reuse: reuse, idle: map[string][]*session{}}
}

// get takes the most recently used idle session of key, nil if none.
func (c *conns) get(key string) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := c.idle[key]
	if len(l) == 0 {
		return nil
	}
	s := l[len(l)-1]
	c.idle[key] = l[:len(l)-1]
	return s
}

// put keeps s for reuse, or ends it when reuse is off or it has carried
// enough.
func (c *conns) put(s *session) {
	if c.reuse < 0 || s.uses >= maxUses {
		go quit(s)
		return
	}
	s.idle = time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.idle[s.key] = append(c.idle[s.key], s)
	if c.timer == nil {
		c.timer = time.AfterFunc(c.reuse, c.expire)
	}
}

// expire ends the sessions idle for longer than the reuse time.
func (c *conns) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.timer = nil
	now := time.Now()
	for k, l := range c.idle {
		keep := l[:0]
		for _, s := range l {
			if now.Sub(s.idle) >= c.reuse {
				go quit(s)
			} else {
				keep = append(keep, s)
			}
		}
		if len(keep) == 0 {
			delete(c.idle, k)
		} else {
			c.idle[k] = keep
		}
	}
	if len(c.idle) > 0 {
		c.timer = time.AfterFunc(c.reuse/2+time.Millisecond, c.expire)
	}
}

// closeAll ends every idle session.
func (c *conns) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, l := range c.idle {
		for _, s := range l {
			go quit(s)
		}
		delete(c.idle, k)
	}
}

// quit ends a session politely, briefly.
func quit(s *session) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if s.c.Quit(ctx) != nil {
		s.c.Close()
	}
}

// Limiter bounds the connections open at once to one destination. The
// relay acquires a slot for each delivery to a destination and releases
// it when done.
type Limiter interface {
	// Acquire waits until fewer than limit slots of dest are taken (or
	// ctx ends) and takes one; release gives it back.
	Acquire(ctx context.Context, dest string, limit int) (release func(), err error)
}

// localLimiter counts slots in this process.
type localLimiter struct {
	mu   sync.Mutex
	sems map[string]chan struct{}
}

func newLocalLimiter() *localLimiter { return &localLimiter{sems: map[string]chan struct{}{}} }

// Acquire implements Limiter.
func (l *localLimiter) Acquire(ctx context.Context, dest string, limit int) (func(), error) {
	l.mu.Lock()
	sem, ok := l.sems[dest]
	if !ok || cap(sem) != limit {
		sem = make(chan struct{}, limit)
		l.sems[dest] = sem
	}
	l.mu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
