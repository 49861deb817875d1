// Package wiretest is the hostile scripted peer of the SMTP and POP3 client
// tests: a goroutine server on 127.0.0.1 that follows a test's script line
// by line, and a throwaway PKI for its TLS. It imports testing and is meant
// only for tests.
package wiretest

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// SelfSigned returns a certificate for host, and for ips, that is its own
// CA and valid for an hour around now, with a pool trusting it.
func SelfSigned(t testing.TB, host string, ips ...net.IP) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	cert, pool, err := selfSigned(host, ips)
	if err != nil {
		t.Fatal(err)
	}
	return cert, pool
}

func selfSigned(host string, ips []net.IP) (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host},
		DNSNames: []string{host}, IPAddresses: ips,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}

var localhost = sync.OnceValues(func() (*tls.Certificate, *x509.CertPool) {
	cert, pool, err := selfSigned("localhost", []net.IP{net.ParseIP("127.0.0.1")})
	if err != nil {
		panic("wiretest: " + err.Error())
	}
	return &cert, pool
})

// Cert returns the peer's certificate, for localhost and 127.0.0.1. It is
// made once per test binary, since key generation would otherwise dominate
// short tests.
func Cert() tls.Certificate {
	cert, _ := localhost()
	return *cert
}

// Pool returns a pool trusting Cert.
func Pool() *x509.CertPool {
	_, pool := localhost()
	return pool
}

// Peer is the server side of one scripted session.
type Peer struct {
	// T reports the script's failures.
	T *testing.T
	// Conn and R are the connection, TLS after StartTLS, and its reader.
	Conn net.Conn
	R    *bufio.Reader
	// Got are the command lines received, in order.
	Got []string
}

// Send writes text as it is: a script decides every octet, CRLF included.
func (p *Peer) Send(text string) { p.Conn.Write([]byte(text)) }

// Expect reads one command line and checks its prefix; it gives up after
// five seconds so that a client that stops talking fails the test rather
// than hanging it.
func (p *Peer) Expect(prefix string) string {
	p.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := p.R.ReadString('\n')
	if err != nil {
		p.T.Errorf("server: waiting for %q: %v", prefix, err)
		return ""
	}
	line = strings.TrimRight(line, "\r\n")
	p.Got = append(p.Got, line)
	if !strings.HasPrefix(line, prefix) {
		p.T.Errorf("server: got %q, want prefix %q", line, prefix)
	}
	return line
}

// Hold keeps the connection open until the client sends an octet or
// closes it, or two seconds pass: a server that has said all it will, as
// a silent port or one a client gives up on.
func (p *Peer) Hold() {
	p.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	p.R.ReadByte()
}

// Rest returns every line the client still sends until it closes the
// connection (or three seconds pass), so that a test can check what never
// reached the server after a point.
func (p *Peer) Rest() []string {
	var got []string
	p.Conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	for {
		line, err := p.R.ReadString('\n')
		if line != "" {
			got = append(got, strings.TrimRight(line, "\r\n"))
		}
		if err != nil {
			return got
		}
	}
}

// ScriptedRest is Scripted whose server, after script, keeps every line
// the client still sends (see Rest); rest waits for the script's end and
// returns them.
func ScriptedRest(t *testing.T, script func(p *Peer)) (addr string, rest func() []string) {
	t.Helper()
	var late []string
	addr, _, done := Scripted(t, func(p *Peer) {
		script(p)
		late = p.Rest()
	})
	return addr, func() []string { <-done; return late }
}

// NeverGot fails the test when one of the lines the server received late
// (see Rest) has one of the prefixes: the client went on when it should
// have stopped.
func NeverGot(t *testing.T, late []string, prefixes ...string) {
	t.Helper()
	for _, l := range late {
		for _, pre := range prefixes {
			if strings.HasPrefix(l, pre) {
				t.Fatalf("the client went on when it should have stopped: the server got %q (all: %q)", l, late)
			}
		}
	}
}

// StartTLS runs the server side of the handshake with Cert.
// A failed handshake is only logged: tests of rejected certificates expect
// it, and the client's error is what they check.
func (p *Peer) StartTLS() {
	tc := tls.Server(p.Conn, &tls.Config{Certificates: []tls.Certificate{Cert()}})
	if err := tc.Handshake(); err != nil {
		p.T.Logf("server handshake: %v", err)
	}
	p.Conn, p.R = tc, bufio.NewReader(tc)
}

// Scripted runs script on the first connection to a loopback listener and
// returns its address, the peer, and a channel closed when the script ends.
// The test's cleanup waits for the script, so its checks stay inside the
// test's lifetime.
func Scripted(t *testing.T, script func(p *Peer)) (string, *Peer, <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	p := &Peer{T: t}
	go func() {
		defer close(done)
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer c.Close()
		p.Conn, p.R = c, bufio.NewReader(c)
		script(p)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), p, done
}
