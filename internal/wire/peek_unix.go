//go:build unix

package wire

import (
	"net"
	"syscall"
)

// peeker looks into a plain socket without reading from it. It is made
// once per session, so that a peek before a command allocates nothing.
type peeker struct {
	rc  syscall.RawConn
	buf [512]byte
	n   int
	fn  func(fd uintptr) bool
}

// newPeeker returns the peeker of conn, nil when conn is not a plain
// socket.
func newPeeker(conn net.Conn) *peeker {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &peeker{rc: rc}
	p.fn = p.peek
	return p
}

// arrived returns how many octets (up to a small bound) wait in the socket
// without being read, 0 for a nil peeker. The peek does not block: Go's
// sockets are non-blocking, so an empty socket answers EAGAIN at once.
func (p *peeker) arrived() int {
	if p == nil {
		return 0
	}
	p.n = 0
	p.rc.Read(p.fn)
	return p.n
}

func (p *peeker) peek(fd uintptr) bool {
	if m, _, err := syscall.Recvfrom(int(fd), p.buf[:], syscall.MSG_PEEK); err == nil {
		p.n = m
	}
	return true
}
