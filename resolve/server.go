package resolve

import (
	"net"
	"net/netip"
)

// ServerAddr returns the DNS server the resolver queries (Server, or the
// first nameserver of /etc/resolv.conf).
func (r *Resolver) ServerAddr() (string, error) { return r.server() }

// Local reports whether the resolver's server is on this host (a
// loopback address), the one kind of server whose AD bit a relay can
// trust without more (RFC 7672 section 2.1: the path from a remote
// validating resolver can be tampered with).
func (r *Resolver) Local() bool {
	addr, err := r.server()
	if err != nil {
		return false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.Unmap().IsLoopback()
}
