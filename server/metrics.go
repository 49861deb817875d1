package server

import (
	"crypto/tls"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/srvconn"
	"github.com/mailsec/mailsec/metrics"
	"github.com/mailsec/mailsec/pop3d"
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

// listenerName is the configured name of the listener that accepted c.
func listenerName(c net.Conn, kind string) string {
	if mc, ok := c.(*metricsConn); ok {
		return mc.l.name
	}
	return kind
}

// smtpObserver feeds smtpd's events into the metrics.
type smtpObserver struct{ m *metrics.Metrics }

// Auth implements smtpd.Observer.
func (o smtpObserver) Auth(s smtpd.SessionInfo, mechanism string, ok bool) {
	o.m.Auth(listenerName(s.Conn, s.Kind.String()), mechanism, ok)
}

// Message implements smtpd.Observer.
func (o smtpObserver) Message(_ smtpd.SessionInfo, msg smtpd.MessageInfo) {
	accepted := msg.Outcome == smtpd.Accepted
	reason := ""
	if !accepted {
		reason = msg.Outcome.String()
	}
	o.m.Message(msg.Octets, accepted, reason)
	if accepted {
		o.m.Delivered(msg.StoreTime)
	}
}

// pop3Observer feeds pop3d's events into the metrics.
type pop3Observer struct{ m *metrics.Metrics }

// Auth implements pop3d.Observer.
func (o pop3Observer) Auth(s pop3d.SessionInfo, mechanism string, ok bool) {
	o.m.Auth(listenerName(s.Conn, s.Kind.String()), mechanism, ok)
}

// Retrieved implements pop3d.Observer.
func (o pop3Observer) Retrieved(s pop3d.SessionInfo, octets int64) {
	o.m.Retrieved(listenerName(s.Conn, s.Kind.String()), octets)
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
