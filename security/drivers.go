package security

import (
	"context"

	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/tlsconf"
)

// StartTLS is the STARTTLS (SMTP, RFC 3207) / STLS (POP3, RFC 2595) driver.
// It has no parameters: the TLS options belong to the connection.
type StartTLS struct {
	facts *tlsconf.Facts
	conn  Conn
}

// NewStartTLS returns a STARTTLS driver.
func NewStartTLS() *StartTLS { return &StartTLS{} }

// Name returns "STARTTLS".
func (d *StartTLS) Name() string { return "STARTTLS" }

// StartsTLS marks the driver as the split point of seed 001.
func (d *StartTLS) StartsTLS() {}

// Supported is true when the server offers STARTTLS/STLS and the connection
// is not already under TLS.
func (d *StartTLS) Supported(c Caps, s sasl.ConnState) bool { return c.StartTLS && s.TLS == nil }

// Open issues STARTTLS and performs the handshake.
func (d *StartTLS) Open(ctx context.Context, c Conn) error {
	if err := c.StartTLS(ctx); err != nil {
		return err
	}
	d.conn = c
	return nil
}

// Close has nothing to do: TLS closes with the connection.
func (d *StartTLS) Close(context.Context, Conn) error { return nil }

// Info reports the negotiated TLS facts: version, cipher suite, group and
// the peer's leaf certificate subject.
func (d *StartTLS) Info() map[string]string {
	if d.conn == nil {
		return nil
	}
	st := d.conn.State().TLS
	if st == nil {
		return nil
	}
	return tlsconf.FactsOf(st).Summary()
}

// Auth is an authentication driver for one SASL mechanism.
type Auth struct {
	// New makes a fresh mechanism for each attempt.
	New func() (sasl.Client, error)
	// Mechanism is the SASL name, used for verification.
	Mechanism string
	used      string
}

// NewAuth returns a driver that authenticates with the named mechanism and
// credentials.
func NewAuth(mech string, cred sasl.Credentials) *Auth {
	return &Auth{Mechanism: mech, New: func() (sasl.Client, error) { return sasl.NewClient(mech, cred) }}
}

// Name returns "AUTH " and the mechanism.
func (d *Auth) Name() string { return "AUTH " + d.Mechanism }

// Supported is true when the server offers the mechanism. A -PLUS mechanism
// also needs TLS, since it binds to the TLS channel.
func (d *Auth) Supported(c Caps, s sasl.ConnState) bool {
	if !c.HasAuth(d.Mechanism) {
		return false
	}
	return !sasl.NeedsTLS(d.Mechanism) || s.TLS != nil
}

// Open runs the exchange.
func (d *Auth) Open(ctx context.Context, c Conn) error {
	m, err := d.New()
	if err != nil {
		return err
	}
	if err := c.Authenticate(ctx, m); err != nil {
		return err
	}
	d.used = m.Name()
	return nil
}

// Close has nothing to do: SMTP and POP3 have no logout for SASL.
func (d *Auth) Close(context.Context, Conn) error { return nil }

// Info reports the mechanism used.
func (d *Auth) Info() map[string]string {
	if d.used == "" {
		return nil
	}
	return map[string]string{"mechanism": d.used}
}

// AutoAuth authenticates with the strongest mechanism the server offers at
// the time it is verified, which, placed after STARTTLS, is the list the
// server announces under TLS.
type AutoAuth struct {
	Cred sasl.Credentials
	used string
}

// Name returns "AUTH auto".
func (d *AutoAuth) Name() string { return "AUTH auto" }

// Supported is true when some offered mechanism is usable with the
// credentials on this connection.
func (d *AutoAuth) Supported(c Caps, s sasl.ConnState) bool {
	return sasl.Strongest(c.Auth, s, d.Cred) != ""
}

// Open picks the mechanism and runs the exchange.
func (d *AutoAuth) Open(ctx context.Context, c Conn) error {
	mech := sasl.Strongest(c.Caps().Auth, c.State(), d.Cred)
	m, err := sasl.NewClient(mech, d.Cred)
	if err != nil {
		return err
	}
	if err := c.Authenticate(ctx, m); err != nil {
		return err
	}
	d.used = m.Name()
	return nil
}

// Close has nothing to do.
func (d *AutoAuth) Close(context.Context, Conn) error { return nil }

// Info reports the mechanism chosen.
func (d *AutoAuth) Info() map[string]string {
	if d.used == "" {
		return nil
	}
	return map[string]string{"mechanism": d.used}
}
