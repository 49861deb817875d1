package dial

import (
	"context"
	"encoding/binary"
	"net"
	"strings"

	"github.com/mailsec/mailsec"
)

// SOCKS4 reply codes of the 1992 protocol description ("SOCKS: A protocol
// for TCP proxy across firewalls").
var socks4Replies = map[byte]string{
	91: "request rejected or failed",
	92: "request rejected: the proxy cannot reach identd on the client",
	93: "request rejected: identd reports a different user ID",
}

// socks4 sends a CONNECT request: version 4, command 1, port, IPv4
// address, user ID, NUL. SOCKS4a puts 0.0.0.x (x non-zero) in the address
// and the host name, NUL-terminated, after the user ID, for the proxy to
// resolve. Plain SOCKS4 can only carry an address, so a name is resolved
// here, through the system resolver.
func (p *Proxy) socks4(ctx context.Context, conn net.Conn, t target) (net.Addr, error) {
	if p.Password != "" {
		return nil, p.fail(mailsec.ProxyAuthTypeUnknown, "SOCKS4 has no password authentication, only a user ID")
	}
	if strings.IndexByte(p.Username, 0) >= 0 || strings.IndexByte(t.host, 0) >= 0 {
		return nil, p.fail(mailsec.ProxyException, "a NUL byte cannot be sent in a SOCKS4 request")
	}
	ip4 := t.ip.To4()
	remote := false
	switch {
	case t.ip != nil && ip4 == nil:
		return nil, p.fail(mailsec.ProxyException, "SOCKS4 cannot carry the IPv6 address %s; use socks5://", t.host)
	case t.ip == nil && p.Kind == SOCKS4A:
		ip4, remote = net.IPv4(0, 0, 0, 1).To4(), true
	case t.ip == nil:
		p.note("=== resolving %s locally: SOCKS4 carries only IPv4 addresses (socks4a:// lets the proxy resolve it)", t.host)
		ips, err := net.DefaultResolver.LookupIP(ctx, "ip4", t.host)
		if err != nil {
			return nil, mailsec.NetError("resolve "+t.host+" for SOCKS4", mailsec.DNS, err)
		}
		ip4 = ips[0].To4()
	}
	req := []byte{0x04, 0x01}
	req = binary.BigEndian.AppendUint16(req, t.port)
	req = append(req, ip4...)
	req = append(append(req, p.Username...), 0)
	if remote {
		req = append(append(req, t.host...), 0)
		p.sent("SOCKS4a CONNECT %s (name resolved by the proxy)", t)
	} else {
		p.sent("SOCKS4 CONNECT %s:%d", ip4, t.port)
	}
	if err := p.write(ctx, conn, "CONNECT request", req); err != nil {
		return nil, err
	}
	var rep [8]byte
	if err := p.read(ctx, conn, "CONNECT reply", rep[:]); err != nil {
		return nil, err
	}
	p.got("SOCKS4 reply version %d, code %d", rep[0], rep[1])
	// The reply's version byte is 0, not 4.
	if rep[0] != 0 {
		return nil, p.fail(mailsec.ProxyUnexpected, "the proxy's SOCKS4 reply has version %d, not 0", rep[0])
	}
	if rep[1] == 90 {
		return boundAddr(net.IP(rep[4:8]), binary.BigEndian.Uint16(rep[2:4])), nil
	}
	if why, ok := socks4Replies[rep[1]]; ok {
		return nil, p.fail(mailsec.ProxyRequestFailed, "the proxy refused CONNECT %s: code %d (%s)", t, rep[1], why)
	}
	return nil, p.fail(mailsec.ProxyUnexpected, "the proxy's SOCKS4 reply has unknown code %d", rep[1])
}
