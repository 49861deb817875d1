package srvconn

import (
	"net"
	"sync"
	"time"
)

// Guard holds a session's connection for Shutdown, which runs in another
// goroutine: Kick ends the session's wait for its next command at once,
// Close closes the connection whatever the session is doing.
type Guard struct {
	mu   sync.Mutex
	conn net.Conn
	idle bool
}

// Set makes c the session's connection (again after STARTTLS or STLS).
func (g *Guard) Set(c net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conn = c
}

// StartWait marks the session as waiting for its next command line, which
// must come whole within timeout: one deadline for the whole line, so that
// a client sending a byte a second does not extend it (slowloris). It
// returns false, marking nothing, once closed reports true; checked under
// the same lock as Kick, so a wait either sees Shutdown or gets kicked.
func (g *Guard) StartWait(closed func() bool, timeout time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if closed() {
		return false
	}
	g.conn.SetReadDeadline(time.Now().Add(timeout))
	g.idle = true
	return true
}

// EndWait marks the end of a wait StartWait began.
func (g *Guard) EndWait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.idle = false
}

// Kick makes a session waiting for a command return at once, so that
// Shutdown does not wait out the command timeout of idle clients.
func (g *Guard) Kick() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.idle {
		g.conn.SetReadDeadline(time.Unix(1, 0))
	}
}

// Close closes the connection, when Shutdown's deadline has passed.
func (g *Guard) Close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.conn.Close()
}
