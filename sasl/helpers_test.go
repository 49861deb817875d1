package sasl

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
)

// memStore is a UserStore over a map, with SCRAM credentials derived when
// a user is added as `users add` would.
type memStore struct {
	passwords map[string]string
	scram     map[string]StoredCredentials
}

func newMemStore(t testing.TB, users ...string) *memStore {
	t.Helper()
	s := &memStore{passwords: map[string]string{}, scram: map[string]StoredCredentials{}}
	for i := 0; i+1 < len(users); i += 2 {
		sc, err := NewStoredCredentials(users[i+1], minIterations)
		if err != nil {
			t.Fatal(err)
		}
		s.passwords[users[i]] = users[i+1]
		s.scram[users[i]] = sc
	}
	return s
}

func (s *memStore) CheckPassword(user, password string) bool {
	want, ok := s.passwords[user]
	return ok && subtle.ConstantTimeCompare([]byte(want), []byte(password)) == 1
}

func (s *memStore) SCRAMSHA256(user string) (StoredCredentials, bool) {
	sc, ok := s.scram[user]
	return sc, ok
}

// fakeTLS12 is a TLS 1.2 state with a tls-unique value, enough for
// mechanisms that only look at it.
func fakeTLS12() *tls.ConnectionState {
	return &tls.ConnectionState{Version: tls.VersionTLS12, HandshakeComplete: true,
		TLSUnique: []byte("0123456789ab")}
}

// overTLS is a ConnState as the protocol layer gives it under TLS.
func overTLS() ConnState { return ConnState{TLS: fakeTLS12(), Host: "mail.example.org", Port: 587} }

// tlsPair runs a real handshake over a pipe and returns the client's and
// the server's connection state, so channel binding values are genuine.
func tlsPair(t *testing.T, maxVersion uint16) (client, server tls.ConnectionState) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"mail.example.org"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(cert)
	cc, sc := net.Pipe()
	defer cc.Close()
	defer sc.Close()
	srv := tls.Server(sc, &tls.Config{MaxVersion: maxVersion,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}})
	cli := tls.Client(cc, &tls.Config{MaxVersion: maxVersion, RootCAs: roots, ServerName: "mail.example.org"})
	errc := make(chan error, 1)
	go func() { errc <- srv.Handshake() }()
	if err := cli.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return cli.ConnectionState(), srv.ConnectionState()
}

// exchange plays c against s as the protocol layer would, with hook (if
// not nil) able to alter each server challenge in transit. It returns the
// first error of either side, the client's Verify included.
func exchange(c Client, s Server, cs ConnState, hook func(step int, ch []byte) []byte) error {
	resp, err := c.Start(cs)
	if err != nil {
		return err
	}
	for step := 1; step < 10; step++ {
		ch, done, err := s.Next(resp)
		if err != nil {
			return err
		}
		if done {
			if v, ok := c.(Verifier); ok {
				return v.Verify()
			}
			return nil
		}
		if hook != nil {
			ch = hook(step, ch)
		}
		if resp, err = c.Next(ch); err != nil {
			return err
		}
	}
	return errors.New("exchange did not end")
}

// wantCode fails unless err is a *mailsec.Error with code.
func wantCode(t *testing.T, err error, code mailsec.Code) {
	t.Helper()
	var me *mailsec.Error
	if !errors.As(err, &me) {
		t.Fatalf("error %v (%T) is not a *mailsec.Error", err, err)
	}
	if me.Code != code {
		t.Fatalf("error %q has code %v, want %v", err, me.Code, code)
	}
}
