package security

import (
	"context"
	"strings"

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

// StartsTLS marks the driver as the split point of the security context.
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

// Auth is an authentication driver for one SASL mechanism, or, with an
// empty Mechanism, for the strongest mechanism the server offers when the
// driver is verified; placed after STARTTLS, that is the list the server
// announces under TLS.
type Auth struct {
	// Mechanism is the SASL name; empty means the strongest usable one.
	Mechanism string
	// Cred are the credentials every attempt uses.
	Cred sasl.Credentials
	used string
}

// NewAuth returns a driver that authenticates with the named mechanism
// ("" for the strongest offered) and credentials.
func NewAuth(mech string, cred sasl.Credentials) *Auth {
	return &Auth{Mechanism: strings.ToUpper(mech), Cred: cred}
}

// Name returns "AUTH " and the mechanism, or "AUTH auto".
func (d *Auth) Name() string {
	if d.Mechanism == "" {
		return "AUTH auto"
	}
	return "AUTH " + d.Mechanism
}

// Supported is true when the server offers the mechanism. A -PLUS mechanism
// also needs TLS, since it binds to the TLS channel.
func (d *Auth) Supported(c Caps, s sasl.ConnState) bool {
	if d.Mechanism == "" {
		return sasl.Strongest(c.Auth, s, d.Cred) != ""
	}
	return c.HasAuth(d.Mechanism) && (!sasl.NeedsTLS(d.Mechanism) || s.TLS != nil)
}

// Open picks the mechanism when it is automatic and runs the exchange.
func (d *Auth) Open(ctx context.Context, c Conn) error {
	mech := d.Mechanism
	if mech == "" {
		mech = sasl.Strongest(c.Caps().Auth, c.State(), d.Cred)
	}
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

// Close has nothing to do: SMTP and POP3 have no logout for SASL.
func (d *Auth) Close(context.Context, Conn) error { return nil }

// Info reports the mechanism used.
func (d *Auth) Info() map[string]string {
	if d.used == "" {
		return nil
	}
	return map[string]string{"mechanism": d.used}
}
