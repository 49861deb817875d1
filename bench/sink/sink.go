// Package sink is the SMTP server the benchmarks send to: emersion/go-smtp's
// server on 127.0.0.1 with a backend that discards every message, STARTTLS
// with a self-signed ECDSA certificate made at start, and two knobs that
// make loopback look more like a network:
//
//   - RTT delays every octet the server sends by the given time, so each
//     request/reply round trip costs RTT. Without it loopback has almost no
//     latency and pipelining (RFC 2920) shows no benefit.
//   - HideChunking removes CHUNKING from the EHLO reply, which go-smtp's
//     server always advertises, so a client that prefers BDAT (RFC 3030) is
//     measured with DATA too.
//
// The sink runs either in the calling process (Start) or in a child process
// (Spawn), which keeps the server's CPU time and allocations out of the
// client's measurements.
package sink

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// ServerName is the name in the sink's certificate; clients must check the
// certificate against it.
const ServerName = "localhost"

// Config describes a sink.
type Config struct {
	// RTT is the simulated round-trip time. Every write the server makes
	// is delivered to the client RTT later, without holding back the
	// writes after it (a delay line, not a sleep per write, so that
	// pipelined replies are not charged one RTT each). Client-to-server
	// traffic is not delayed, so a command and its reply cost one RTT.
	// Zero means plain loopback.
	RTT time.Duration
	// HideChunking puts a line filter in front of the server that
	// removes CHUNKING from EHLO replies. go-smtp's server cannot turn
	// CHUNKING off and does its own STARTTLS, under which a filter cannot
	// see; so with HideChunking the filter terminates TLS and the server
	// behind it runs in plain text on loopback. This adds one in-process
	// hop; compare clients on the same kind of sink.
	HideChunking bool
	// OnMessage, when set, is called for every accepted message with
	// its first octets (up to 1024: the header of a small message) once
	// its data has been read in full, before the server replies; a
	// benchmark uses it to stamp arrival times. It must be safe for
	// concurrent use. It only works in a sink started in this process
	// (Start), not in a child (Spawn).
	OnMessage func(head []byte) `json:"-"`
}

// String describes the configuration for reports.
func (c Config) String() string {
	s := fmt.Sprintf("rtt=%v", c.RTT)
	if c.HideChunking {
		s += " chunking=hidden"
	} else {
		s += " chunking=offered"
	}
	return s
}

// Stats count what the sink accepted.
type Stats struct {
	// Messages is the number of messages whose data was accepted.
	Messages int64
	// Bytes is the number of message octets received (after the server
	// removed dot-stuffing).
	Bytes int64
}

// Sink is a running SMTP sink.
type Sink struct {
	// Addr is the host:port clients connect to.
	Addr string
	// RootCAs trusts the sink's certificate.
	RootCAs *x509.CertPool

	pem   []byte
	close func() (Stats, error)
}

// Close stops the sink and returns what it received.
func (s *Sink) Close() (Stats, error) { return s.close() }

// TLSConfig returns a client configuration that verifies the sink.
func (s *Sink) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.RootCAs, ServerName: ServerName}
}

// Start runs a sink in this process.
func Start(cfg Config) (*Sink, error) {
	cert, pemCert, err := selfSigned()
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pemCert)
	srv, stats := newServer()
	stats.onMessage = cfg.OnMessage
	tcfg := &tls.Config{Certificates: []tls.Certificate{cert}}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	var stops []func()
	if !cfg.HideChunking {
		srv.TLSConfig = tcfg
		go srv.Serve(&delayListener{Listener: ln, rtt: cfg.RTT})
	} else {
		back, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			ln.Close()
			return nil, err
		}
		go srv.Serve(back)
		f := &filter{front: ln, back: back.Addr().String(), tls: tcfg, rtt: cfg.RTT}
		go f.serve()
		stops = append(stops, func() { ln.Close() })
	}
	s := &Sink{Addr: ln.Addr().String(), RootCAs: pool, pem: pemCert}
	s.close = func() (Stats, error) {
		for _, f := range stops {
			f()
		}
		err := srv.Close()
		return Stats{Messages: stats.messages.Load(), Bytes: stats.bytes.Load()}, err
	}
	return s, nil
}

type counters struct {
	messages, bytes atomic.Int64
	onMessage       func(head []byte)
}

func newServer() (*gosmtp.Server, *counters) {
	st := &counters{}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &session{st: st}, nil
	}))
	srv.Domain = ServerName
	srv.ErrorLog = log.New(io.Discard, "", 0)
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	return srv, st
}

// session is the discard backend: every envelope is accepted and the data
// read and dropped.
type session struct{ st *counters }

func (*session) Reset()                                 {}
func (*session) Logout() error                          { return nil }
func (*session) Mail(string, *gosmtp.MailOptions) error { return nil }
func (*session) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (s *session) Data(r io.Reader) error {
	var head []byte
	if s.st.onMessage != nil {
		head = make([]byte, 1024)
		k, err := io.ReadFull(r, head)
		if err != nil && err != io.ErrUnexpectedEOF {
			return err
		}
		head = head[:k]
	}
	n, err := io.Copy(io.Discard, r)
	n += int64(len(head))
	s.st.bytes.Add(n)
	if err == nil {
		s.st.messages.Add(1)
		if s.st.onMessage != nil {
			s.st.onMessage(head)
		}
	}
	return err
}

// selfSigned makes a P-256 certificate for localhost and 127.0.0.1.
func selfSigned() (tls.Certificate, []byte, error) {
	certPEM, keyPEM, err := SelfSignedPEM()
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	return cert, certPEM, err
}

// SelfSignedPEM makes a self-signed P-256 certificate for ServerName
// (localhost) and 127.0.0.1, and its PKCS #8 key, both PEM-encoded: the
// sink's, and any other benchmark server's (bench/relay's Postfix).
func SelfSignedPEM() (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "mailsec bench " + ServerName},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(48 * time.Hour),
		DNSNames:              []string{ServerName},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), nil
}

// delayListener wraps each accepted connection in a delayConn.
type delayListener struct {
	net.Listener
	rtt time.Duration
}

func (l *delayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || l.rtt <= 0 {
		return c, err
	}
	return newDelayConn(c, l.rtt), nil
}

// delayConn is a one-way delay line on the server's writes: Write copies
// the octets and returns at once, and a goroutine writes them to the socket
// when their delivery time (write time + d) comes. Writes keep their order
// and are not serialised by the delay, as on a real link.
type delayConn struct {
	net.Conn
	d    time.Duration
	mu   sync.Mutex
	q    chan packet
	shut bool
	err  atomic.Pointer[error]
	done chan struct{}
}

type packet struct {
	at time.Time
	b  []byte
}

func newDelayConn(c net.Conn, d time.Duration) *delayConn {
	dc := &delayConn{Conn: c, d: d, q: make(chan packet, 4096), done: make(chan struct{})}
	go dc.loop()
	return dc
}

func (c *delayConn) Write(p []byte) (int, error) {
	if e := c.err.Load(); e != nil {
		return 0, *e
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.shut {
		return 0, net.ErrClosed
	}
	c.q <- packet{at: time.Now().Add(c.d), b: append([]byte(nil), p...)}
	return len(p), nil
}

func (c *delayConn) loop() {
	defer close(c.done)
	for p := range c.q {
		if c.err.Load() != nil {
			continue
		}
		if w := time.Until(p.at); w > 0 {
			time.Sleep(w)
		}
		if _, err := c.Conn.Write(p.b); err != nil {
			c.err.Store(&err)
		}
	}
}

// SetWriteDeadline is ignored: writes return at once, and a deadline on the
// socket would cut off octets still in flight (crypto/tls sets one of "now"
// after its close_notify alert, which would lose a queued QUIT reply).
func (c *delayConn) SetWriteDeadline(time.Time) error { return nil }

// SetDeadline sets the read deadline only; see SetWriteDeadline.
func (c *delayConn) SetDeadline(t time.Time) error { return c.Conn.SetReadDeadline(t) }

// Close delivers what is still in flight (a QUIT reply, say), then closes.
func (c *delayConn) Close() error {
	c.mu.Lock()
	if !c.shut {
		c.shut = true
		close(c.q)
	}
	c.mu.Unlock()
	select {
	case <-c.done:
	case <-time.After(5 * time.Second):
	}
	return c.Conn.Close()
}

// filter fronts a plain-text go-smtp server: it offers and terminates
// STARTTLS itself and drops CHUNKING from EHLO replies.
type filter struct {
	front net.Listener
	back  string
	tls   *tls.Config
	rtt   time.Duration
}

func (f *filter) serve() {
	for {
		c, err := f.front.Accept()
		if err != nil {
			return
		}
		if f.rtt > 0 {
			c = newDelayConn(c, f.rtt)
		}
		go f.session(c)
	}
}

func (f *filter) session(c net.Conn) {
	defer c.Close()
	b, err := net.Dial("tcp", f.back)
	if err != nil {
		return
	}
	defer b.Close()
	var (
		mu    sync.Mutex
		out   = bufio.NewWriter(c)
		inTLS = false
	)
	// Server to client: line by line, flushed when the server has nothing
	// more buffered, so replies written together stay together.
	go func() {
		defer c.Close()
		br := bufio.NewReader(b)
		for {
			line, err := br.ReadString('\n')
			mu.Lock()
			switch {
			case line == "250-CHUNKING\r\n":
			case !inTLS && strings.HasPrefix(line, "250-PIPELINING"):
				out.WriteString("250-STARTTLS\r\n")
				out.WriteString(line)
			default:
				out.WriteString(line)
			}
			if err != nil || br.Buffered() == 0 {
				out.Flush()
			}
			mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	// Client to server: commands are forwarded until STARTTLS, which the
	// filter answers and performs; after it everything is copied.
	cr := bufio.NewReader(c)
	for {
		line, err := cr.ReadString('\n')
		if err != nil {
			return
		}
		if !strings.EqualFold(strings.TrimRight(line, "\r\n"), "STARTTLS") {
			if _, err := io.WriteString(b, line); err != nil {
				return
			}
			continue
		}
		if cr.Buffered() > 0 {
			return // pipelined past STARTTLS: refuse, as RFC 3207 requires
		}
		mu.Lock()
		out.WriteString("220 2.0.0 Ready to start TLS\r\n")
		out.Flush()
		tc := tls.Server(c, f.tls)
		if err := tc.Handshake(); err != nil {
			mu.Unlock()
			return
		}
		out = bufio.NewWriter(tc)
		inTLS = true
		mu.Unlock()
		if _, err := io.Copy(b, tc); err != nil && !errors.Is(err, net.ErrClosed) {
			return
		}
		return
	}
}
