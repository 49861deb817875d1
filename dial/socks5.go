package dial

import (
	"context"
	"encoding/binary"
	"net"
	"strconv"

	"github.com/mailsec/mailsec"
)

// SOCKS5 constants of RFC 1928 and RFC 1929.
const (
	socks5Version      = 0x05
	socks5NoAuth       = 0x00
	socks5UserPass     = 0x02
	socks5NoAcceptable = 0xff
	socks5Connect      = 0x01
	socks5ATYPIPv4     = 0x01
	socks5ATYPDomain   = 0x03
	socks5ATYPIPv6     = 0x04
	userPassVersion    = 0x01
)

// socks5Replies are the REP texts of RFC 1928 section 6.
var socks5Replies = map[byte]string{
	1: "general SOCKS server failure",
	2: "connection not allowed by ruleset",
	3: "network unreachable",
	4: "host unreachable",
	5: "connection refused",
	6: "TTL expired",
	7: "command not supported",
	8: "address type not supported",
}

func methodName(m byte) string {
	switch m {
	case socks5NoAuth:
		return "no-auth"
	case socks5UserPass:
		return "username/password"
	case 0x01:
		return "GSSAPI"
	case socks5NoAcceptable:
		return "no acceptable methods"
	}
	return "method " + strconv.Itoa(int(m))
}

// socks5 negotiates a method, authenticates when the proxy chose
// username/password, and asks for a CONNECT to t.
func (p *Proxy) socks5(ctx context.Context, conn net.Conn, t target) (net.Addr, error) {
	// RFC 1928 section 3: version, number of methods, methods. Without
	// credentials only "no authentication" is offered.
	methods := []byte{socks5NoAuth}
	if p.Username != "" || p.Password != "" {
		methods = append(methods, socks5UserPass)
	}
	hello := append([]byte{socks5Version, byte(len(methods))}, methods...)
	names := make([]string, len(methods))
	for i, m := range methods {
		names[i] = methodName(m)
	}
	p.sent("SOCKS5 methods offered: %v", names)
	if err := p.write(ctx, conn, "method negotiation", hello); err != nil {
		return nil, err
	}
	var sel [2]byte
	if err := p.read(ctx, conn, "method negotiation", sel[:]); err != nil {
		return nil, err
	}
	p.got("SOCKS5 version %d, method chosen: %s", sel[0], methodName(sel[1]))
	if sel[0] != socks5Version {
		return nil, p.fail(mailsec.ProxyUnexpected, "the proxy answered with version %d, not SOCKS5", sel[0])
	}
	switch {
	case sel[1] == socks5NoAcceptable && len(methods) == 1:
		return nil, p.fail(mailsec.ProxyAuthRequired, "the proxy requires authentication and no credentials were given")
	case sel[1] == socks5NoAcceptable:
		return nil, p.fail(mailsec.ProxyAuthTypeUnknown, "the proxy accepts none of the methods offered (no-auth, username/password)")
	case sel[1] == socks5UserPass && len(methods) == 2:
		if err := p.socks5Auth(ctx, conn); err != nil {
			return nil, err
		}
	case sel[1] != socks5NoAuth:
		// RFC 1928 section 3: the server selects from the methods the
		// client listed; any other choice breaks the protocol.
		return nil, p.fail(mailsec.ProxyUnexpected, "the proxy chose %s, which was not offered", methodName(sel[1]))
	}
	return p.socks5Connect(ctx, conn, t)
}

// socks5Auth is RFC 1929: version 1, the user name and the password, each
// 1 to 255 octets; a non-zero status is a refusal.
func (p *Proxy) socks5Auth(ctx context.Context, conn net.Conn) error {
	if len(p.Username) < 1 || len(p.Username) > 255 || len(p.Password) < 1 || len(p.Password) > 255 {
		return p.fail(mailsec.ProxyException, "SOCKS5 user name and password must each be 1 to 255 bytes (RFC 1929)")
	}
	req := make([]byte, 0, 3+len(p.Username)+len(p.Password))
	req = append(req, userPassVersion, byte(len(p.Username)))
	req = append(req, p.Username...)
	req = append(req, byte(len(p.Password)))
	req = append(req, p.Password...)
	p.sent("SOCKS5 username/password authentication (credentials redacted)")
	if err := p.write(ctx, conn, "authentication", req); err != nil {
		return err
	}
	var st [2]byte
	if err := p.read(ctx, conn, "authentication", st[:]); err != nil {
		return err
	}
	p.got("SOCKS5 authentication version %d, status %d", st[0], st[1])
	if st[0] != userPassVersion {
		return p.fail(mailsec.ProxyUnexpected, "the proxy answered authentication with version %d, not 1 (RFC 1929)", st[0])
	}
	if st[1] != 0 {
		return p.fail(mailsec.ProxyAuthFailed, "the proxy rejected the user name or password (status %d)", st[1])
	}
	return nil
}

// socks5Connect sends the CONNECT request of RFC 1928 section 4 and reads
// the reply of section 6, all of it, so no reply byte is left for the
// protocol in the tunnel. Host names go as ATYP 3 for the proxy to
// resolve: nothing is looked up locally.
func (p *Proxy) socks5Connect(ctx context.Context, conn net.Conn, t target) (net.Addr, error) {
	req := []byte{socks5Version, socks5Connect, 0x00}
	switch ip4 := t.ip.To4(); {
	case ip4 != nil:
		req = append(append(req, socks5ATYPIPv4), ip4...)
	case t.ip != nil:
		req = append(append(req, socks5ATYPIPv6), t.ip.To16()...)
	case len(t.host) > 255:
		return nil, p.fail(mailsec.ProxyException, "host name longer than the 255 bytes SOCKS5 can carry")
	default:
		req = append(append(req, socks5ATYPDomain, byte(len(t.host))), t.host...)
	}
	req = binary.BigEndian.AppendUint16(req, t.port)
	how := "(address)"
	if t.ip == nil {
		how = "(name resolved by the proxy)"
	}
	p.sent("SOCKS5 CONNECT %s %s", t, how)
	if err := p.write(ctx, conn, "CONNECT request", req); err != nil {
		return nil, err
	}
	var head [4]byte
	if err := p.read(ctx, conn, "CONNECT reply", head[:]); err != nil {
		return nil, err
	}
	if head[0] != socks5Version {
		p.got("SOCKS5 reply with version %d", head[0])
		return nil, p.fail(mailsec.ProxyUnexpected, "the proxy's CONNECT reply has version %d, not 5", head[0])
	}
	if head[1] != 0 {
		why, ok := socks5Replies[head[1]]
		if !ok {
			why = "unassigned reply code"
		}
		p.got("SOCKS5 reply %d: %s", head[1], why)
		return nil, p.fail(mailsec.ProxyRequestFailed, "the proxy refused CONNECT %s: reply %d (%s)", t, head[1], why)
	}
	var n int
	switch head[3] {
	case socks5ATYPIPv4:
		n = 4
	case socks5ATYPIPv6:
		n = 16
	case socks5ATYPDomain:
		var l [1]byte
		if err := p.read(ctx, conn, "CONNECT reply", l[:]); err != nil {
			return nil, err
		}
		n = int(l[0])
	default:
		p.got("SOCKS5 reply 0 with address type %d", head[3])
		return nil, p.fail(mailsec.ProxyUnexpected, "the proxy's CONNECT reply has unknown address type %d", head[3])
	}
	bound := make([]byte, n+2)
	if err := p.read(ctx, conn, "CONNECT reply", bound); err != nil {
		return nil, err
	}
	bport := binary.BigEndian.Uint16(bound[n:])
	var baddr string
	if head[3] == socks5ATYPDomain {
		baddr = printable(bound[:n])
	} else {
		baddr = net.IP(bound[:n]).String()
	}
	p.got("SOCKS5 reply 0: succeeded, bound %s", net.JoinHostPort(baddr, strconv.Itoa(int(bport))))
	if head[3] == socks5ATYPDomain {
		return nil, nil
	}
	return boundAddr(net.IP(bound[:n]), bport), nil
}
