//go:build unix

package wire

import (
	"net"
	"syscall"
)

// arrived returns how many octets (up to a small bound) wait in the socket
// of conn without being read, or 0 when conn is not a plain socket. The
// peek does not block: Go's sockets are non-blocking, so an empty socket
// answers EAGAIN at once.
func arrived(conn net.Conn) int {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0
	}
	var buf [512]byte
	n := 0
	rc.Read(func(fd uintptr) bool {
		if m, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK); err == nil {
			n = m
		}
		return true
	})
	return n
}
