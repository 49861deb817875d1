package pop3

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/sasl"
)

// testPKI is a self-signed server certificate for localhost/127.0.0.1.
var testPKI = sync.OnceValues(func() (tls.Certificate, *x509.CertPool) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	leaf, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
})

// server is the hostile side of one scripted session.
type server struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	got  []string // command lines received, in order
}

func (s *server) send(text string) { s.conn.Write([]byte(text)) }

// expect reads one command line and checks its prefix.
func (s *server) expect(prefix string) string {
	s.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := s.r.ReadString('\n')
	if err != nil {
		s.t.Errorf("server: waiting for %q: %v", prefix, err)
		return ""
	}
	line = strings.TrimRight(line, "\r\n")
	s.got = append(s.got, line)
	if !strings.HasPrefix(line, prefix) {
		s.t.Errorf("server: got %q, want prefix %q", line, prefix)
	}
	return line
}

// tlsUp runs the server side of the handshake.
func (s *server) tlsUp() {
	cert, _ := testPKI()
	tc := tls.Server(s.conn, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err := tc.Handshake(); err != nil {
		s.t.Logf("server handshake: %v", err)
	}
	s.conn, s.r = tc, bufio.NewReader(tc)
}

// capa answers a CAPA command with the lines given.
func (s *server) capa(lines ...string) {
	s.expect("CAPA")
	s.send("+OK\r\n" + strings.Join(lines, "\r\n") + "\r\n.\r\n")
}

// scripted runs script against the first connection to a loopback listener;
// implicit makes the server start TLS first.
func scripted(t *testing.T, implicit bool, script func(s *server)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		ln.Close()
		if err != nil {
			return
		}
		defer c.Close()
		s := &server{t: t, conn: c, r: bufio.NewReader(c)}
		if implicit {
			s.tlsUp()
		}
		script(s)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// opts are client options trusting the test certificate.
func opts(o Options) *Options {
	_, pool := testPKI()
	o.TLS.RootCAs = pool
	o.TLS.ServerName = "localhost"
	o.CommandTimeout = 5 * time.Second
	return &o
}

var carol = &sasl.Credentials{Username: "carol", Password: "s3cret-Pa55"}

func codeIs(t *testing.T, err error, want mailsec.Code) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %v (code %v), want code %v", err, mailsec.CodeOf(err), want)
	}
}

// loginTLS is the common opening of a POP3S session with USER/PASS.
func loginTLS(s *server, capa ...string) {
	s.send("+OK ready <1.2@test>\r\n")
	s.capa(capa...)
	s.expect("USER carol")
	s.send("+OK\r\n")
	s.expect("PASS ")
	s.send("+OK logged in\r\n")
}
