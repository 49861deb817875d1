package sasl

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
	"github.com/xdg-go/scram"
)

type scramVector struct {
	mech, nonce, serverNonce, salt string
	steps                          [4]string // client-first, server-first, client-final, server-final
}

// RFC 5802 section 5 and RFC 7677 section 3.
var scramVectors = []scramVector{
	{
		mech: SCRAMSHA1, nonce: "fyko+d2lbbFgONRv9qkxdawL", serverNonce: "3rfcNHYJY1ZVvWVs7j", salt: "QSXCR+Q6sek8bf92",
		steps: [4]string{
			"n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
			"r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
			"c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
			"v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
		},
	},
	{
		mech: SCRAMSHA256, nonce: "rOprNGfwEbeRWgbNEkqO", serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0", salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
		steps: [4]string{
			"n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
			"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
			"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
			"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
		},
	},
}

func newRFCClient(t *testing.T, v scramVector) *scramClient {
	t.Helper()
	c, err := NewClient(v.mech, Credentials{Username: "user", Password: "pencil"})
	if err != nil {
		t.Fatal(err)
	}
	sc := c.(*scramClient)
	sc.nonce = v.nonce
	return sc
}

func TestSCRAMClientRFCVectors(t *testing.T) {
	for _, v := range scramVectors {
		t.Run(v.mech, func(t *testing.T) {
			c := newRFCClient(t, v)
			if err := c.Verify(); err == nil {
				t.Fatal("Verify passed before the exchange")
			}
			first, err := c.Start(overTLS())
			if err != nil || string(first) != v.steps[0] {
				t.Fatalf("client-first = %q, %v", first, err)
			}
			final, err := c.Next([]byte(v.steps[1]))
			if err != nil || string(final) != v.steps[2] {
				t.Fatalf("client-final = %q, %v\nwant %q", final, err, v.steps[2])
			}
			if err := c.Verify(); err == nil {
				t.Fatal("Verify passed before the server-final-message")
			}
			last, err := c.Next([]byte(v.steps[3]))
			if err != nil || last == nil || len(last) != 0 {
				t.Fatalf("response to server-final = %q, %v", last, err)
			}
			if err := c.Verify(); err != nil {
				t.Fatalf("Verify: %v", err)
			}
			_, err = c.Next([]byte("v=again"))
			wantCode(t, err, mailsec.Protocol)
		})
	}
}

func TestSCRAMClientBadServerFinal(t *testing.T) {
	v := scramVectors[1]
	for _, bad := range []string{
		"v=" + strings.Repeat("A", 43) + "=", // a wrong signature
		"e=invalid-proof",
		"garbage",
	} {
		c := newRFCClient(t, v)
		c.Start(overTLS())
		c.Next([]byte(v.steps[1]))
		_, err := c.Next([]byte(bad))
		wantCode(t, err, mailsec.Protocol)
		wantCode(t, c.Verify(), mailsec.Protocol)
	}
}

func TestSCRAMClientBadServerFirst(t *testing.T) {
	v := scramVectors[1]
	early := newRFCClient(t, v)
	_, err := early.Next([]byte(v.steps[1]))
	wantCode(t, err, mailsec.Protocol)

	for _, bad := range []string{
		"r=someoneelsesnonce,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096", // does not extend our nonce
		"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1024",
		"r=rOprNGfwEbeRWgbNEkqOxyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=2000000000", // CPU exhaustion
		"r=rOprNGfwEbeRWgbNEkqOxyz,s=***,i=4096",
		"",
	} {
		c := newRFCClient(t, v)
		c.Start(overTLS())
		_, err := c.Next([]byte(bad))
		wantCode(t, err, mailsec.Protocol)
	}
}

// The server replays the RFC 7677 exchange byte for byte when given the
// example's salt and nonce, and accepts the example's proof.
func TestSCRAMServerRFC7677(t *testing.T) {
	v := scramVectors[1]
	salt, _ := base64.StdEncoding.DecodeString(v.salt)
	sc, err := deriveStoredCredentials("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	store := &memStore{scram: map[string]StoredCredentials{"user": sc}}
	srv, err := NewServer("scram-sha-256", store, overTLS())
	if err != nil {
		t.Fatal(err)
	}
	srv.(*scramServer).nonce = v.serverNonce
	ch, done, err := srv.Next(nil)
	if err != nil || done || ch == nil || len(ch) != 0 {
		t.Fatalf("Next(nil) = %q, %v, %v; want an empty challenge", ch, done, err)
	}
	ch, _, err = srv.Next([]byte(v.steps[0]))
	if err != nil || string(ch) != v.steps[1] {
		t.Fatalf("server-first = %q, %v", ch, err)
	}
	ch, _, err = srv.Next([]byte(v.steps[2]))
	if err != nil || string(ch) != v.steps[3] {
		t.Fatalf("server-final = %q, %v", ch, err)
	}
	if srv.Identity() != "" {
		t.Fatal("identity set before the exchange ended")
	}
	ch, done, err = srv.Next([]byte{})
	if err != nil || !done || ch != nil {
		t.Fatalf("last Next = %q, %v, %v", ch, done, err)
	}
	if srv.Identity() != "user" {
		t.Fatalf("Identity = %q", srv.Identity())
	}
	_, _, err = srv.Next([]byte{})
	wantCode(t, err, mailsec.Protocol)
}

// -PLUS binds to a real TLS channel: tls-exporter under TLS 1.3 and
// tls-unique under TLS 1.2. A server holding the same connection's binding
// accepts; one on another connection (a man in the middle) rejects.
func TestSCRAMPlusChannelBinding(t *testing.T) {
	cases := []struct {
		mech    string
		version uint16
		hash    scram.HashGeneratorFcn
		cbType  string
	}{
		{SCRAMSHA256Plus, 0, scram.SHA256, "tls-exporter"},
		{SCRAMSHA1Plus, 0x0303, scram.SHA1, "tls-unique"},
	}
	for _, tc := range cases {
		t.Run(tc.mech, func(t *testing.T) {
			clientState, serverState := tlsPair(t, tc.version)
			_, otherServerState := tlsPair(t, tc.version)
			for _, mitm := range []bool{false, true} {
				state := serverState
				if mitm {
					state = otherServerState
				}
				cb, err := channelBinding(&state)
				if err != nil {
					t.Fatal(err)
				}
				creds, _ := tc.hash.NewClient("user", "pencil", "")
				stored, _ := creds.GetStoredCredentialsWithError(scram.KeyFactors{Salt: "salt", Iters: 4096})
				srv, _ := tc.hash.NewServer(func(string) (scram.StoredCredentials, error) { return stored, nil })
				conv := srv.NewConversationWithChannelBindingRequired(cb)

				c, _ := NewClient(tc.mech, Credentials{Username: "user", Password: "pencil"})
				msg, err := c.Start(ConnState{TLS: &clientState})
				if err != nil {
					t.Fatal(err)
				}
				if !strings.HasPrefix(string(msg), "p="+tc.cbType+",,") {
					t.Fatalf("client-first = %q, want channel binding %s", msg, tc.cbType)
				}
				var serr error
				for i := 0; i < 2 && serr == nil; i++ {
					var ch string
					ch, serr = conv.Step(string(msg))
					if serr == nil {
						msg, err = c.Next([]byte(ch))
						if err != nil {
							t.Fatal(err)
						}
					}
				}
				if mitm != (serr != nil) {
					t.Fatalf("mitm=%v: server error %v", mitm, serr)
				}
				if !mitm {
					if err := c.(Verifier).Verify(); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
}

func TestSCRAMPlusRefusals(t *testing.T) {
	c, _ := NewClient(SCRAMSHA256Plus, fullCred)
	_, err := c.Start(ConnState{AllowPlaintext: true})
	wantCode(t, err, mailsec.AuthUnavailable)

	noUnique := fakeTLS12()
	noUnique.TLSUnique = nil
	c, _ = NewClient(SCRAMSHA256Plus, fullCred)
	_, err = c.Start(ConnState{TLS: noUnique})
	wantCode(t, err, mailsec.AuthUnavailable)
	if !errors.Is(err, mailsec.AuthUnavailable) {
		t.Fatal("errors.Is on the code fails")
	}
}
