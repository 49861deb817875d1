package sasl

import (
	"crypto/tls"
	"testing"
)

func TestStrongest(t *testing.T) {
	pw := Credentials{Username: "u", Password: "p"}
	tok := Credentials{Username: "u", Token: "t"}
	both := Credentials{Username: "u", Password: "p", Token: "t"}
	noCB := &tls.ConnectionState{Version: tls.VersionTLS12, HandshakeComplete: true}
	tls13Unfinished := &tls.ConnectionState{Version: tls.VersionTLS13}
	onTLS := ConnState{TLS: fakeTLS12()}
	plainOK := ConnState{AllowPlaintext: true}
	all := []string{"plain", "LOGIN", "cram-md5", "XOAUTH2", "OAUTHBEARER", "SCRAM-SHA-1",
		"SCRAM-SHA-1-PLUS", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "NTLM", "GSSAPI"}
	cases := []struct {
		name    string
		offered []string
		cs      ConnState
		cred    Credentials
		want    string
	}{
		{"everything, password, TLS", all, onTLS, pw, SCRAMSHA256Plus},
		{"no channel binding", all, ConnState{TLS: noCB}, pw, SCRAMSHA256},
		{"unfinished handshake", all, ConnState{TLS: tls13Unfinished}, pw, SCRAMSHA256},
		{"SHA-1 PLUS beats SHA-1", []string{"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "PLAIN"}, onTLS, pw, SCRAMSHA1Plus},
		{"SHA-1 without binding", []string{"SCRAM-SHA-1", "SCRAM-SHA-1-PLUS", "PLAIN"}, ConnState{TLS: noCB}, pw, SCRAMSHA1},
		{"PLAIN over CRAM-MD5", []string{"CRAM-MD5", "LOGIN", "PLAIN", "NTLM"}, onTLS, pw, Plain},
		{"LOGIN over CRAM-MD5", []string{"CRAM-MD5", "LOGIN", "NTLM"}, onTLS, pw, Login},
		{"CRAM-MD5 over NTLM", []string{"NTLM", "CRAM-MD5"}, onTLS, pw, CRAMMD5},
		{"NTLM last", []string{"NTLM", "GSSAPI"}, onTLS, pw, NTLM},
		{"token", all, onTLS, tok, OAuthBearer},
		{"XOAUTH2 only", []string{"PLAIN", "XOAUTH2"}, onTLS, tok, XOAuth2},
		{"token first when both", all, onTLS, both, OAuthBearer},
		{"password fallback when both", []string{"PLAIN", "LOGIN"}, onTLS, both, Plain},
		{"token, no token mechanism", []string{"PLAIN", "SCRAM-SHA-256"}, onTLS, tok, ""},
		{"nothing in common", []string{"GSSAPI", "EXTERNAL"}, onTLS, pw, ""},
		{"empty offer", nil, onTLS, pw, ""},
		{"off TLS", all, ConnState{}, pw, ""},
		{"off TLS, token", all, ConnState{}, tok, ""},
		{"off TLS, SCRAM only", []string{"SCRAM-SHA-256"}, ConnState{}, pw, ""},
		{"allowed plaintext: no PLUS", all, plainOK, pw, SCRAMSHA256},
		{"allowed plaintext: PLAIN", []string{"PLAIN", "LOGIN"}, plainOK, pw, Plain},
		{"unusable PLAIN credentials", []string{"PLAIN", "LOGIN"}, onTLS, Credentials{Username: "u", Password: "a\x00b"}, Login},
		{"no password", all, onTLS, Credentials{Username: "u"}, ""},
		{"case and spaces", []string{" scram-sha-256 "}, onTLS, pw, SCRAMSHA256},
	}
	for _, tc := range cases {
		if got := Strongest(tc.offered, tc.cs, tc.cred); got != tc.want {
			t.Errorf("%s: Strongest = %q, want %q", tc.name, got, tc.want)
		}
	}
}
