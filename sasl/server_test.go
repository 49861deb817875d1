package sasl

import (
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
	"github.com/xdg-go/scram"
)

func TestServerMechanisms(t *testing.T) {
	got := ServerMechanisms()
	if !slices.Equal(got, []string{SCRAMSHA256, Plain, Login}) {
		t.Fatalf("ServerMechanisms = %q", got)
	}
	got[0] = "changed"
	if ServerMechanisms()[0] != SCRAMSHA256 {
		t.Fatal("ServerMechanisms shares its slice with callers")
	}
}

func TestNewServerRefusals(t *testing.T) {
	store := newMemStore(t)
	_, err := NewServer("CRAM-MD5", store, overTLS())
	wantCode(t, err, mailsec.AuthUnavailable)
	_, err = NewServer(Plain, nil, overTLS())
	wantCode(t, err, mailsec.Config)
	for _, mech := range ServerMechanisms() {
		_, err = NewServer(mech, store, ConnState{})
		wantCode(t, err, mailsec.AuthUnavailable)
		if _, err = NewServer(mech, store, ConnState{AllowPlaintext: true}); err != nil {
			t.Errorf("%s with AllowPlaintext: %v", mech, err)
		}
	}
}

// Each client against the matching server: the right password passes and
// names the user, a wrong one or an unknown user fails with
// ErrBadCredentials on the server side.
func TestRoundTrips(t *testing.T) {
	store := newMemStore(t, "alice", "correct horse", "bob", "hunter2")
	cases := []struct {
		cred    Credentials
		wantErr bool
	}{
		{Credentials{Username: "alice", Password: "correct horse"}, false},
		{Credentials{Username: "alice", Password: "correct horse", Authzid: "alice"}, false},
		{Credentials{Username: "alice", Password: "wrong"}, true},
		{Credentials{Username: "bob", Password: "correct horse"}, true},
		{Credentials{Username: "mallory", Password: "correct horse"}, true},
		{Credentials{Username: "alice", Password: "correct horse", Authzid: "bob"}, true},
	}
	for _, mech := range ServerMechanisms() {
		for _, tc := range cases {
			c, err := NewClient(mech, tc.cred)
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewServer(mech, store, overTLS())
			if err != nil {
				t.Fatal(err)
			}
			err = exchange(c, s, overTLS(), nil)
			if mech == Login && tc.cred.Authzid != "" {
				// LOGIN has no authzid: bob's request goes unheard.
				tc.wantErr = tc.cred.Password != "correct horse" || tc.cred.Username != "alice"
			}
			switch {
			case tc.wantErr && !errors.Is(err, ErrBadCredentials):
				t.Errorf("%s %+v: error %v, want ErrBadCredentials", mech, tc.cred, err)
			case tc.wantErr:
				wantCode(t, err, mailsec.AuthUnavailable)
				if strings.Contains(err.Error(), tc.cred.Password) {
					t.Errorf("%s: error %q reveals the password", mech, err)
				}
			case err != nil:
				t.Errorf("%s %+v: %v", mech, tc.cred, err)
			case s.Identity() != tc.cred.Username:
				t.Errorf("%s: Identity = %q", mech, s.Identity())
			}
		}
	}
}

// A server that does not know the password cannot forge the SCRAM
// server-final-message: the client rejects a tampered signature, and
// Verify fails when the server skips the message altogether.
func TestSCRAMServerSignatureTampered(t *testing.T) {
	store := newMemStore(t, "alice", "correct horse")
	cred := Credentials{Username: "alice", Password: "correct horse"}
	c, _ := NewClient(SCRAMSHA256, cred)
	s, _ := NewServer(SCRAMSHA256, store, overTLS())
	err := exchange(c, s, overTLS(), func(step int, ch []byte) []byte {
		if step == 2 {
			sig, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(string(ch), "v="))
			if err != nil {
				t.Fatalf("server-final-message %q: %v", ch, err)
			}
			sig[0] ^= 1
			ch = []byte("v=" + base64.StdEncoding.EncodeToString(sig))
		}
		return ch
	})
	wantCode(t, err, mailsec.Protocol)
	if errors.Is(err, ErrBadCredentials) {
		t.Fatal("a forged server signature is not a client credentials problem")
	}

	c, _ = NewClient(SCRAMSHA256, cred)
	s, _ = NewServer(SCRAMSHA256, store, overTLS())
	first, _ := c.Start(overTLS())
	ch, _, _ := s.Next(first)
	final, _ := c.Next(ch)
	if _, _, err := s.Next(final); err != nil {
		t.Fatal(err)
	}
	// The impostor answers 235 here without the server-final-message.
	wantCode(t, c.(Verifier).Verify(), mailsec.Protocol)
}

// An unknown user gets a salt as stable as a real user's, so the
// server-first-message does not tell who has an account.
func TestSCRAMServerUnknownUserDecoy(t *testing.T) {
	store := newMemStore(t)
	salts := map[string]bool{}
	for range 2 {
		s, _ := NewServer(SCRAMSHA256, store, overTLS())
		ch, _, err := s.Next([]byte("n,,n=ghost,r=abc"))
		if err != nil {
			t.Fatalf("unknown user refused early: %v", err)
		}
		salts[strings.Split(string(ch), ",")[1]] = true
	}
	if len(salts) != 1 {
		t.Fatalf("decoy salts differ between attempts: %v", salts)
	}
}

func TestSCRAMServerGS2Flags(t *testing.T) {
	store := newMemStore(t, "user", "pencil")
	for _, tc := range []struct {
		first string
		ok    bool
	}{
		{"n,,n=user,r=abc", true},
		{"y,,n=user,r=abc", true}, // client can bind, server offers no -PLUS: fine
		{"p=tls-exporter,,n=user,r=abc", false},
		{"n,a=root,n=user,r=abc", false},
		{"n,,m=ext,n=user,r=abc", false},
		{"n,,n=us=er,r=abc", false},
		{"x,,n=user,r=abc", false},
	} {
		s, _ := NewServer(SCRAMSHA256, store, overTLS())
		_, _, err := s.Next([]byte(tc.first))
		if tc.ok != (err == nil) {
			t.Errorf("%q: error %v", tc.first, err)
		}
		if err != nil {
			if _, _, again := s.Next([]byte(tc.first)); again == nil {
				t.Errorf("%q: exchange went on after a failure", tc.first)
			}
		}
	}

	// A client that supports channel binding but saw no -PLUS offered
	// ("y", RFC 5802 section 6) completes the exchange.
	cc, _ := scram.SHA256.NewClient("user", "pencil", "")
	conv := cc.NewConversationAdvertisingChannelBinding()
	s, _ := NewServer(SCRAMSHA256, store, overTLS())
	msg, _ := conv.Step("")
	for step := 0; ; step++ {
		ch, done, err := s.Next([]byte(msg))
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		if done {
			break
		}
		if msg, err = conv.Step(string(ch)); err != nil {
			t.Fatalf("client step %d: %v", step, err)
		}
	}
	if !conv.Valid() || s.Identity() != "user" {
		t.Fatalf("valid=%v identity=%q", conv.Valid(), s.Identity())
	}
}

func TestPlainServer(t *testing.T) {
	store := newMemStore(t, "tim", "tanstaaftanstaaf")
	s, _ := NewServer(Plain, store, overTLS())
	ch, done, err := s.Next(nil)
	if err != nil || done || ch == nil || len(ch) != 0 {
		t.Fatalf("Next(nil) = %q, %v, %v; want an empty challenge", ch, done, err)
	}
	if _, done, err = s.Next([]byte("\x00tim\x00tanstaaftanstaaf")); err != nil || !done {
		t.Fatalf("done=%v err=%v", done, err)
	}
	for _, bad := range []string{
		"", "tim", "\x00tim", "\x00\x00pw", "\x00tim\x00", "a\x00tim\x00pw\x00x",
		"\x00tim\x00" + strings.Repeat("x", 256), "\x00\xff\x00pw", "\x00t\nim\x00pw",
	} {
		s, _ := NewServer(Plain, store, overTLS())
		_, _, err := s.Next([]byte(bad))
		wantCode(t, err, mailsec.Protocol)
		if errors.Is(err, ErrBadCredentials) {
			t.Errorf("%q: malformed message reported as bad credentials", bad)
		}
	}
}

func TestLoginServer(t *testing.T) {
	store := newMemStore(t, "alice", "s3cret")
	s, _ := NewServer(Login, store, overTLS())
	ch, _, _ := s.Next(nil)
	if string(ch) != "Username:" {
		t.Fatalf("first prompt %q", ch)
	}
	ch, _, _ = s.Next([]byte("alice"))
	if string(ch) != "Password:" {
		t.Fatalf("second prompt %q", ch)
	}
	if _, done, err := s.Next([]byte("s3cret")); err != nil || !done || s.Identity() != "alice" {
		t.Fatalf("done=%v err=%v identity=%q", done, err, s.Identity())
	}

	// The user name as initial response skips the first prompt.
	s, _ = NewServer(Login, store, overTLS())
	ch, _, _ = s.Next([]byte("alice"))
	if string(ch) != "Password:" {
		t.Fatalf("prompt after initial response %q", ch)
	}
	if _, done, err := s.Next([]byte("s3cret")); err != nil || !done {
		t.Fatalf("done=%v err=%v", done, err)
	}

	s, _ = NewServer(Login, store, overTLS())
	_, _, err := s.Next([]byte{})
	wantCode(t, err, mailsec.Protocol)
}

func TestNewStoredCredentials(t *testing.T) {
	a, err := NewStoredCredentials("pencil", 4096)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewStoredCredentials("pencil", 4096)
	if string(a.Salt) == string(b.Salt) || len(a.Salt) != saltSize {
		t.Fatal("salts must be fresh and random")
	}
	if len(a.StoredKey) != 32 || len(a.ServerKey) != 32 || a.Iterations != 4096 {
		t.Fatalf("unexpected credentials %+v", a)
	}
	for _, tc := range []struct {
		pw    string
		iters int
	}{{"", 4096}, {"pencil", 1000}, {"pencil", maxIterations + 1}, {"bell\u0007", 4096}} {
		_, err := NewStoredCredentials(tc.pw, tc.iters)
		wantCode(t, err, mailsec.Config)
	}
}
