// Package sasl holds the SASL mechanisms (RFC 4422) mailsec speaks, client
// and server side, independent of SMTP and POP3: the protocol packages move
// the bytes, a mechanism only computes them.
package sasl

import "crypto/tls"

// ConnState is what a mechanism may know of the connection it runs on.
type ConnState struct {
	// TLS is the state of the TLS layer, nil when the connection is plain.
	TLS *tls.ConnectionState
	// Host and Port name the server as the user asked for it (OAUTHBEARER
	// sends them, RFC 7628 section 3.1).
	Host string
	Port int
	// AllowPlaintext is the user's explicit consent to send credentials
	// over a connection without TLS. Without it mechanisms that expose a
	// reusable secret refuse to start off TLS.
	AllowPlaintext bool
}

// Credentials are what the user authenticates with. Mechanisms take the
// fields they need: Password for PLAIN, LOGIN, CRAM-MD5, SCRAM and NTLM;
// Token for XOAUTH2 and OAUTHBEARER.
type Credentials struct {
	Username string
	Password string
	Token    string
	// Authzid is the identity to act as (RFC 4422 section 3.4.1); usually
	// empty.
	Authzid string
	// Domain is the NTLM domain; empty means the user's own.
	Domain string
}

// Client is one authentication exchange, client side. A Client is used once.
type Client interface {
	// Name is the mechanism name as sent in AUTH ("SCRAM-SHA-256").
	Name() string
	// Start begins the exchange and returns the initial response, nil when
	// the mechanism has none. It fails when the mechanism refuses the
	// connection (credentials off TLS without AllowPlaintext, -PLUS
	// without TLS).
	Start(cs ConnState) (ir []byte, err error)
	// Next answers a server challenge (already base64-decoded).
	Next(challenge []byte) (response []byte, err error)
}

// Verifier is implemented by mechanisms that authenticate the server too
// (SCRAM): Verify is called after the server reported success and fails
// when the server never proved knowledge of the credentials.
type Verifier interface {
	Verify() error
}
