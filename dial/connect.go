package dial

import (
	"bytes"
	"context"
	"encoding/base64"
	"net"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec"
)

// Limits on an HTTP proxy's answer to CONNECT, so a hostile proxy cannot
// make the client buffer without bound or loop on interim responses.
const (
	maxHeaderBytes = 16 << 10
	maxInterim     = 8
)

// connect asks an HTTP proxy for a tunnel (RFC 9110 section 9.3.6): the
// request target is the authority form host:port (RFC 9112 section 3.2.3),
// with Basic credentials (RFC 9110 section 11.7.2, RFC 7617) when there are
// any, sent at once rather than after a 407 so the tunnel takes one round
// trip.
func (p *Proxy) connect(ctx context.Context, conn net.Conn, t target) error {
	auth := t.String()
	if strings.ContainsAny(auth, "\r\n \t") {
		return p.fail(mailsec.ProxyException, "the target \"%s\" cannot be written in a CONNECT request", printable([]byte(auth)))
	}
	var req bytes.Buffer
	req.WriteString("CONNECT " + auth + " HTTP/1.1\r\nHost: " + auth + "\r\n")
	p.sent("CONNECT %s HTTP/1.1", auth)
	p.sent("Host: %s", auth)
	hasCreds := p.Username != "" || p.Password != ""
	if hasCreds {
		// RFC 7617 section 2: the user-id cannot contain a colon.
		if strings.ContainsRune(p.Username, ':') {
			return p.fail(mailsec.ProxyException, "a Basic proxy user name cannot contain ':' (RFC 7617 section 2)")
		}
		cred := base64.StdEncoding.EncodeToString([]byte(p.Username + ":" + p.Password))
		req.WriteString("Proxy-Authorization: Basic " + cred + "\r\n")
		p.sent("Proxy-Authorization: Basic [redacted]")
	}
	req.WriteString("\r\n")
	if err := p.write(ctx, conn, "CONNECT request", req.Bytes()); err != nil {
		return err
	}
	for range maxInterim {
		status, reason, challenges, err := p.readResponse(ctx, conn)
		if err != nil {
			return err
		}
		switch {
		case status >= 100 && status < 200:
			// RFC 9110 section 15.2: interim responses precede the final
			// one and are skipped.
			continue
		case status >= 200 && status < 300:
			// RFC 9110 section 9.3.6: the tunnel starts right after the
			// header; a Content-Length or Transfer-Encoding on a 2xx is
			// ignored. Every byte that follows belongs to the tunnel and
			// reaches the protocol above unread.
			return nil
		// 407 is the proxy's demand for credentials (RFC 9110 section
		// 15.5.8). Some proxies (tinyproxy 1.11) answer wrong credentials
		// on CONNECT with 401 instead: from a proxy it can only be about
		// the credentials too.
		case (status == 407 || status == 401) && !hasCreds:
			return p.failQuoting(mailsec.ProxyAuthRequired, "the proxy requires authentication (%d %s) and no credentials were given", status, reason)
		case status == 407 && !offersBasic(challenges):
			return p.failQuoting(mailsec.ProxyAuthTypeUnknown, "the proxy does not offer Basic authentication (407 %s; it offers %s)",
				reason, printable([]byte(strings.Join(challenges, ", "))))
		case status == 407 || status == 401:
			return p.failQuoting(mailsec.ProxyAuthFailed, "the proxy rejected the credentials (%d %s)", status, reason)
		}
		return p.failQuoting(mailsec.ProxyRequestFailed, "the proxy refused CONNECT %s: HTTP %d %s", auth, status, reason)
	}
	return p.fail(mailsec.ProxyUnexpected, "more than %d interim responses to CONNECT", maxInterim)
}

// readResponse reads one response head: the status line and the header
// fields up to the empty line (RFC 9112 sections 4 and 5). It reads one
// byte at a time so that nothing after the head is consumed: those bytes
// are the target's. The reason phrase is returned printable.
func (p *Proxy) readResponse(ctx context.Context, conn net.Conn) (status int, reason string, challenges []string, err error) {
	total := 0
	line := func() ([]byte, error) {
		var b []byte
		var one [1]byte
		for {
			if err := p.read(ctx, conn, "CONNECT reply", one[:]); err != nil {
				return nil, err
			}
			total++
			if total > maxHeaderBytes {
				return nil, p.fail(mailsec.ProxyUnexpected, "the proxy's answer to CONNECT exceeds %d bytes without ending its header", maxHeaderBytes)
			}
			if one[0] == '\n' {
				// RFC 9112 section 2.2: a bare LF may be taken as the
				// line terminator.
				return bytes.TrimSuffix(b, []byte{'\r'}), nil
			}
			b = append(b, one[0])
		}
	}
	sl, err := line()
	if err != nil {
		return 0, "", nil, err
	}
	p.got("(unverified) %s", printable(sl))
	status, reason, ok := parseStatusLine(string(sl))
	if !ok {
		return 0, "", nil, p.failQuoting(mailsec.ProxyUnexpected, "the proxy's answer to CONNECT is not an HTTP status line: \"%s\"", printable(sl))
	}
	for {
		h, err := line()
		if err != nil {
			return 0, "", nil, err
		}
		if len(h) == 0 {
			return status, reason, challenges, nil
		}
		p.got("(unverified) %s", printable(h))
		if h[0] == ' ' || h[0] == '\t' {
			// Obsolete line folding (RFC 9112 section 5.2) continues the
			// previous field; none of its values matter here.
			continue
		}
		name, value, found := bytes.Cut(h, []byte{':'})
		if !found || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return 0, "", nil, p.fail(mailsec.ProxyUnexpected, "the proxy's answer to CONNECT has a malformed header line: \"%s\"", printable(h))
		}
		if strings.EqualFold(string(name), "Proxy-Authenticate") {
			challenges = append(challenges, strings.TrimSpace(string(value)))
		}
	}
}

// parseStatusLine reads "HTTP/1.x SP 3DIGIT [SP reason]" (RFC 9112
// section 4).
func parseStatusLine(s string) (int, string, bool) {
	ver, rest, ok := strings.Cut(s, " ")
	if !ok || (ver != "HTTP/1.1" && ver != "HTTP/1.0") {
		return 0, "", false
	}
	code, reason, _ := strings.Cut(rest, " ")
	if len(code) != 3 || code[0] < '1' || code[0] > '5' {
		return 0, "", false
	}
	n, err := strconv.Atoi(code)
	if err != nil {
		return 0, "", false
	}
	return n, printable([]byte(reason)), true
}

// offersBasic reports whether a Proxy-Authenticate value offers the Basic
// scheme; a field may hold several challenges (RFC 9110 section 11.6.1).
func offersBasic(challenges []string) bool {
	for _, c := range challenges {
		for _, part := range strings.Split(c, ",") {
			scheme, _, _ := strings.Cut(strings.TrimSpace(part), " ")
			if strings.EqualFold(scheme, "Basic") {
				return true
			}
		}
	}
	return false
}
