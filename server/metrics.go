package server

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/srvconn"
	"github.com/mailsec/mailsec/metrics"
	"github.com/mailsec/mailsec/smtpd"
)

// metricsListener counts accepted connections and marks each with its
// listener, so that the TLS configuration can attribute handshakes.
type metricsListener struct {
	net.Listener
	m        *metrics.Metrics
	name     string
	kind     string
	implicit bool
}

// metricsConn is a connection accepted by a metricsListener.
type metricsConn struct {
	net.Conn
	l *metricsListener
}

// Accept implements net.Listener.
func (l *metricsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.m.Connection(l.name, l.kind)
	return &metricsConn{Conn: c, l: l}, nil
}

// countTLS makes base count completed handshakes per listener and TLS
// version: GetConfigForClient sees the accepted connection and hands out
// a per-listener copy of the configuration whose VerifyConnection, which
// a server calls on every full or resumed handshake, does the counting.
func countTLS(base *tls.Config) {
	var mu sync.Mutex
	perListener := map[*metricsListener]*tls.Config{}
	base.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		mc, ok := hello.Conn.(*metricsConn)
		if !ok {
			return nil, nil // not ours: the base configuration as is
		}
		mu.Lock()
		defer mu.Unlock()
		c, ok := perListener[mc.l]
		if !ok {
			c = base.Clone()
			c.GetConfigForClient = nil
			l := mc.l
			c.VerifyConnection = func(cs tls.ConnectionState) error {
				l.m.TLSHandshake(l.name, srvconn.TLSVersion(cs.Version), l.implicit)
				return nil
			}
			perListener[mc.l] = c
		}
		return c, nil
	}
}

// metricsBackend counts what smtpd hands to the delivery backend: octets,
// accepted and refused messages and how long storing took.
type metricsBackend struct {
	next smtpd.Backend
	m    *metrics.Metrics
}

// Deliver implements smtpd.Backend.
func (b metricsBackend) Deliver(env *smtpd.Envelope, msg io.Reader) error {
	cr := &countingReader{r: msg}
	err := b.next.Deliver(env, cr)
	switch {
	case err == nil:
		b.m.Message(cr.n, true, "")
		b.m.Delivered(time.Since(cr.end))
	case cr.err != nil:
		b.m.Message(cr.n, false, refusalClass(cr.err))
	default:
		b.m.Message(cr.n, false, "store")
	}
	return err
}

// refusalClass names why smtpd's message reader refused a message, from
// the enhanced status code its replies carry: 5.3.4 is the size limit,
// 5.6.0 bare CR/LF or an over-long line; anything else is the transfer
// itself failing (timeout, client gone, shutdown).
func refusalClass(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, " 5.3.4 "):
		return "size"
	case strings.Contains(s, " 5.6.0 "):
		return "content"
	}
	return "transfer"
}

// countingReader counts octets and notes the first error other than EOF
// and when the message ended.
type countingReader struct {
	r   io.Reader
	n   int64
	err error
	end time.Time
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	switch {
	case errors.Is(err, io.EOF):
		c.end = time.Now()
	case err != nil && c.err == nil:
		c.err = err
	}
	return n, err
}

// startMetrics serves m on addr, which must be a loopback address: the
// metrics tell who logs in how often and are not for the network.
func startMetrics(addr string, m *metrics.Metrics) (*http.Server, net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, mailsec.Errorf(mailsec.Config, "metrics", err, "invalid metrics address %q", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, nil, mailsec.Errorf(mailsec.Config, "metrics", nil, "metrics address %q is not a loopback address", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, mailsec.Errorf(mailsec.Config, "metrics", err, "cannot listen on %s", addr)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", m.Handler())
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return hs, ln, nil
}
