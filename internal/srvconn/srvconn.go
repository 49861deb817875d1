// Package srvconn holds the connection plumbing and the session loop that
// mailsec's line-based servers share. Server.Run runs a session from
// admission to close the way net/http's conn.serve does for HTTP: the
// global and per-IP limits and graceful shutdown (Tracker), panic
// recovery, reading bounded lines that end only at CRLF (ReadLine), one
// line-length rule checked before parsing, one write-deadline rule (per
// write), the error limit, and the replies to shutdown and timeouts; the
// protocol (Protocol: smtpd, pop3d) parses and executes. Beside it: the
// accept loop (Tracker.Serve), the TLS handshake of STARTTLS and implicit
// TLS (Handshake, Conn.StartTLS), the SASL exchange of AUTH
// (Conn.Exchange) and the back-off of failed logins (Conn.LoginFailed),
// buffers lent only while a session works (Pool, Buffers) and the
// connection handle Shutdown kicks and closes (Guard).
package srvconn

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Refusal says why Admit turned a connection away; each protocol words
// its own answer.
type Refusal int

const (
	// Admitted is no refusal.
	Admitted Refusal = iota
	// ShuttingDown: Shutdown was called.
	ShuttingDown
	// TooMany: the server holds its maximum of sessions.
	TooMany
	// TooManyFromIP: the client's address holds its maximum.
	TooManyFromIP
)

// Tracker tracks a server's listeners and sessions (of type S) for its
// limits and its shutdown. Call Init before use.
type Tracker[S comparable] struct {
	maxSessions, maxPerIP int

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	sessions  map[S]string // session -> client IP
	perIP     map[string]int
	closed    atomic.Bool   // read without mu by sessions
	done      chan struct{} // closed when the last session ends after Shutdown
}

// Init sets the limits; it must be called once, before anything else.
func (t *Tracker[S]) Init(maxSessions, maxPerIP int) {
	t.maxSessions, t.maxPerIP = maxSessions, maxPerIP
	t.listeners = map[net.Listener]struct{}{}
	t.sessions = map[S]string{}
	t.perIP = map[string]int{}
	t.done = make(chan struct{})
}

// Closed reports whether Shutdown was called.
func (t *Tracker[S]) Closed() bool { return t.closed.Load() }

// Admit registers session s from ip, or says why not.
func (t *Tracker[S]) Admit(s S, ip string) Refusal {
	ip = clientKey(ip)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.closed.Load():
		return ShuttingDown
	case len(t.sessions) >= t.maxSessions:
		return TooMany
	case t.perIP[ip] >= t.maxPerIP:
		return TooManyFromIP
	}
	t.sessions[s] = ip
	t.perIP[ip]++
	return Admitted
}

// Release unregisters a session admitted before.
func (t *Tracker[S]) Release(s S) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ip := t.sessions[s]
	delete(t.sessions, s)
	if t.perIP[ip]--; t.perIP[ip] <= 0 {
		delete(t.perIP, ip)
	}
	if t.closed.Load() && len(t.sessions) == 0 {
		close(t.done)
	}
}

// Serve accepts connections on ln until Shutdown and runs handle for each
// in its own goroutine. It returns nil after Shutdown, or the accept error.
func (t *Tracker[S]) Serve(ln net.Listener, handle func(net.Conn)) error {
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		ln.Close()
		return nil
	}
	t.listeners[ln] = struct{}{}
	t.mu.Unlock()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if t.closed.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and the like: back off as
				// net/http does instead of spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		go handle(c)
	}
}

// Shutdown closes the listeners, calls kick for every session (to end the
// idle ones at once) and waits for the sessions to end. When ctx ends
// first it calls abort for each remaining session, waits for them (at most
// AbortWait: an aborted session only has to notice its closed connection
// and clean up) and returns ctx's error. Shutdown may be called more than
// once.
func (t *Tracker[S]) Shutdown(ctx context.Context, kick, abort func(S)) error {
	t.mu.Lock()
	if !t.closed.Load() {
		t.closed.Store(true)
		for ln := range t.listeners {
			ln.Close()
		}
		if len(t.sessions) == 0 {
			close(t.done)
		}
	}
	for s := range t.sessions {
		kick(s)
	}
	t.mu.Unlock()
	select {
	case <-t.done:
		return nil
	case <-ctx.Done():
		t.mu.Lock()
		for s := range t.sessions {
			abort(s)
		}
		t.mu.Unlock()
		select {
		case <-t.done:
		case <-time.After(AbortWait):
		}
		return ctx.Err()
	}
}

// AbortWait bounds how long Shutdown waits for the sessions it aborted, so
// that a session stuck in a Backend cannot hold up the process's exit.
const AbortWait = 5 * time.Second

// Errors of ReadLine.
var (
	// ErrLineTooLong: the line was longer than the limit; it was consumed
	// to its end without being buffered whole.
	ErrLineTooLong = errors.New("line too long")
	// ErrBareCRLF: the line held a bare CR or a bare LF; it was consumed
	// to its CRLF.
	ErrBareCRLF = errors.New("bare CR or LF in line")
)

// ReadLine reads a CRLF-terminated line of at most max octets (with the
// CRLF) and returns it without the CRLF, valid until the next read.
//
// A line ends only at CRLF (RFC 5321 section 2.3.8, RFC 1939 section 3): a
// bare LF or a bare CR does not end it but spoils it, so that it is
// consumed to its CRLF and answered with ErrBareCRLF as one line. Taking a
// bare LF for a line end would run "NOOP<LF>NOOP<CRLF>" as two commands,
// which is how the SMTP smuggling attacks make a server and a filter in
// front of it disagree about where a command ends. A line longer than max,
// or than r's buffer, is read to its end piecewise (a 10 MiB line costs no
// memory) and answered with ErrLineTooLong.
func ReadLine(r *bufio.Reader, max int) ([]byte, error) {
	n, full, bare, prevCR := 0, false, false, false
	for {
		piece, err := r.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return nil, err
		}
		n += len(piece)
		body := piece // without its LF
		if err == nil {
			body = piece[:len(piece)-1]
		}
		// A CR is allowed only right before an LF: as body's last octet,
		// or as the last octet of the piece before when body is empty.
		if prevCR && piece[0] != '\n' {
			bare = true
		}
		if i := bytes.IndexByte(body, '\r'); i >= 0 && i != len(body)-1 {
			bare = true
		}
		endCR := len(body) > 0 && body[len(body)-1] == '\r'
		if err != nil {
			full, prevCR = true, endCR
			continue
		}
		if !endCR && !(len(body) == 0 && prevCR) {
			bare, prevCR = true, false // a bare LF: the line goes on
			continue
		}
		switch {
		case n > max || full:
			return nil, ErrLineTooLong
		case bare:
			return nil, ErrBareCRLF
		}
		return body[:len(body)-1], nil
	}
}

// IsTimeout reports whether err is a passed deadline.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded)
}

// HostIP returns the IP part of a remote address.
func HostIP(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	h, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return h
}

// clientKey is what the per-client limits count by: the address for IPv4,
// its /64 for IPv6, since a single client commonly gets a whole /64
// (RFC 6177 section 1) and could otherwise rotate through it to slip past
// every limit.
func clientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || !a.Is6() || a.Is4In6() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// NewID returns a random session id for logs and trace headers.
func NewID() string {
	var b [8]byte
	rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// Backoff is the pause before answering the n-th failed login (n >= 1):
// base, doubling with every failure up to 32 times base.
func Backoff(base time.Duration, n int) time.Duration {
	return base << min(n-1, 5)
}

// Handshake runs the server side of a TLS handshake on tc, over conn,
// within timeout, and logs the outcome to log (the TLS facility): the
// version and cipher on success. Nothing read from conn before the
// handshake may be used after it; the caller rebuilds its buffers on tc.
func Handshake(tc *tls.Conn, conn net.Conn, timeout time.Duration, log *slog.Logger) (*tls.ConnectionState, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	conn.SetDeadline(time.Now().Add(timeout))
	if err := tc.HandshakeContext(ctx); err != nil {
		log.Info("TLS handshake failed", "err", err)
		return nil, err
	}
	st := tc.ConnectionState()
	log.Info("TLS established", "version", TLSVersion(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite),
		"resumed", st.DidResume)
	return &st, nil
}

// TLSVersion names a TLS version as Received headers and metrics do
// ("TLS1.3").
func TLSVersion(v uint16) string { return strings.ReplaceAll(tls.VersionName(v), " ", "") }
