package sasl

import (
	"encoding/base64"
	"testing"
)

// FuzzServerPLAIN feeds arbitrary PLAIN messages to the server: it must
// never panic, and it may only succeed for the store's one user.
func FuzzServerPLAIN(f *testing.F) {
	store := newMemStore(f, "tim", "tanstaaftanstaaf")
	f.Fuzz(func(t *testing.T, msg []byte) {
		s, err := NewServer(Plain, store, overTLS())
		if err != nil {
			t.Fatal(err)
		}
		_, done, err := s.Next(msg)
		if done && (err != nil || s.Identity() != "tim") {
			t.Fatalf("%q: done with identity %q, error %v", msg, s.Identity(), err)
		}
	})
}

// FuzzServerSCRAM feeds an arbitrary client-first and client-final message
// and a last response to the SCRAM-SHA-256 server, whose nonce and stored
// credentials are those of RFC 7677 so that the seed corpus can reach
// every step. It must never panic, and success needs the RFC's proof.
func FuzzServerSCRAM(f *testing.F) {
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	sc, err := deriveStoredCredentials("pencil", salt, 4096)
	if err != nil {
		f.Fatal(err)
	}
	store := &memStore{scram: map[string]StoredCredentials{"user": sc}}
	f.Fuzz(func(t *testing.T, first, final, last []byte) {
		s, err := NewServer(SCRAMSHA256, store, overTLS())
		if err != nil {
			t.Fatal(err)
		}
		s.(*scramServer).nonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
		for _, msg := range [][]byte{first, final, last} {
			_, done, err := s.Next(msg)
			if err != nil {
				return
			}
			if done {
				if s.Identity() != "user" {
					t.Fatalf("done with identity %q", s.Identity())
				}
				return
			}
		}
	})
}
