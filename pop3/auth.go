package pop3

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"strings"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/security"
)

// redacted replaces every secret in the transcript and the log.
const redacted = "[credentials redacted]"

// maxAuthLine is the longest AUTH command that may carry the initial
// response (RFC 5034 section 4: 255 octets without the CRLF); a longer one
// is sent after an empty challenge instead.
const maxAuthLine = 255

// Authenticate implements security.Conn: one AUTH exchange (RFC 5034) with
// the SASL mechanism, using the initial-response form when it fits.
func (c *Client) Authenticate(ctx context.Context, m sasl.Client) error {
	op := "AUTH " + m.Name()
	ir, err := m.Start(c.State())
	if err != nil {
		return err
	}
	line, shown := "AUTH "+m.Name(), "AUTH "+m.Name()
	var pending string
	if ir != nil {
		// RFC 5034 section 4: an empty initial response is sent as "=".
		enc := "="
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		if len(line)+1+len(enc) <= maxAuthLine {
			line, shown = line+" "+enc, shown+" "+redacted
		} else {
			pending = enc
		}
	}
	rep, err := c.exchange(ctx, op, line, shown, challenge)
	if err == nil && pending != "" && rep.Continue {
		rep, err = c.exchange(ctx, op, pending, redacted, challenge)
	}
	for err == nil && rep.Continue {
		chal, derr := base64.StdEncoding.DecodeString(rep.Text)
		if derr != nil {
			c.cancelAuth(ctx, op)
			return mailsec.Errorf(mailsec.Protocol, op, derr, "the server's challenge is not base64")
		}
		resp, merr := m.Next(chal)
		if merr != nil {
			c.cancelAuth(ctx, op)
			return merr
		}
		rep, err = c.exchange(ctx, op, base64.StdEncoding.EncodeToString(resp), redacted, challenge)
	}
	if err != nil {
		return err
	}
	if !rep.OK {
		return rep.err(op)
	}
	if v, ok := m.(sasl.Verifier); ok {
		if err := v.Verify(); err != nil {
			return c.wire.Fail(ctx, err)
		}
	}
	return nil
}

// cancelAuth sends "*", which ends the exchange (RFC 5034 section 4); the
// server's -ERR answer is expected and not an error of its own.
func (c *Client) cancelAuth(ctx context.Context, op string) {
	_, _ = c.exchange(ctx, op, "*", "*", challenge)
}

// plainGuard refuses to send a reusable secret without TLS unless the user
// allowed it (RFC 2595 section 2.2 asks clients to protect USER/PASS with
// TLS; the APOP digest is open to offline guessing).
func (c *Client) plainGuard(op string) error {
	if c.wire.TLS == nil && !c.opts.AllowPlaintextAuth {
		return &mailsec.Error{Code: mailsec.AuthUnavailable, Op: op,
			Detail: "refusing to send credentials without TLS; allow plaintext auth explicitly to override"}
	}
	return nil
}

// Login logs in with USER and PASS (RFC 1939 section 7).
func (c *Client) Login(ctx context.Context, user, password string) error {
	if err := c.plainGuard("USER"); err != nil {
		return err
	}
	if err := c.simple(ctx, "USER", "USER "+user); err != nil {
		return err
	}
	return c.simpleShown(ctx, "PASS", "PASS "+password, "PASS "+redacted)
}

// APOP logs in with the digest of the greeting's timestamp and the password
// (RFC 1939 section 7). The server must have put a timestamp ("<...>") in
// its greeting.
func (c *Client) APOP(ctx context.Context, user, password string) error {
	if err := c.plainGuard("APOP"); err != nil {
		return err
	}
	stamp := apopStamp(c.greeting)
	if stamp == "" {
		return &mailsec.Error{Code: mailsec.AuthUnavailable, Op: "APOP", Detail: "the server greeting carries no APOP timestamp"}
	}
	sum := md5.Sum([]byte(stamp + password))
	return c.simpleShown(ctx, "APOP", "APOP "+user+" "+hex.EncodeToString(sum[:]), "APOP "+user+" "+redacted)
}

// apopStamp finds the msg-id timestamp "<...@...>" in a greeting. RFC 1939
// section 7 makes it a msg-id (RFC 822 section 6.1), so anything but one
// "@" between non-empty runs of printable ASCII is refused: a server free
// to choose arbitrary octets there can use MD5 collisions to learn the
// password a few characters per login (Leurent, "Message Freedom in MD4
// and MD5 Collisions", 2007).
func apopStamp(greeting string) string {
	start := strings.IndexByte(greeting, '<')
	if start < 0 {
		return ""
	}
	end := strings.IndexByte(greeting[start:], '>')
	if end < 0 {
		return ""
	}
	stamp := greeting[start : start+end+1]
	local, domain, ok := strings.Cut(stamp[1:len(stamp)-1], "@")
	if !ok || !msgIDText(local) || !msgIDText(domain) {
		return ""
	}
	return stamp
}

// msgIDText reports whether s is a non-empty run of printable ASCII with
// none of the msg-id delimiters "<", ">" and "@".
func msgIDText(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' || s[i] == '<' || s[i] == '>' || s[i] == '@' {
			return false
		}
	}
	return true
}

// Login is the security driver of the POP3 logins: USER/PASS, APOP, or
// automatic (the strongest SASL mechanism offered, else USER/PASS).
type Login struct {
	// Method is MechUser, MechAPOP or "" for automatic.
	Method string
	// Cred are the credentials.
	Cred sasl.Credentials
	used string
}

// NewLogin returns a login driver; method is MechUser, MechAPOP or "".
func NewLogin(method string, cred sasl.Credentials) *Login {
	return &Login{Method: strings.ToUpper(method), Cred: cred}
}

// Name returns "USER", "APOP" or "LOGIN auto".
func (d *Login) Name() string {
	if d.Method == "" {
		return "LOGIN auto"
	}
	return d.Method
}

// Supported checks the server's capabilities: USER needs the USER
// capability (RFC 2449 section 6.8) and automatic login a usable SASL
// mechanism or USER. APOP is not announced by CAPA; Open finds out.
func (d *Login) Supported(c security.Caps, s sasl.ConnState) bool {
	switch d.Method {
	case MechUser:
		return c.UserPass
	case MechAPOP:
		return true
	}
	return sasl.Strongest(c.Auth, s, d.Cred) != "" || c.UserPass
}

// Open logs in.
func (d *Login) Open(ctx context.Context, sc security.Conn) error {
	c, ok := sc.(*Client)
	if !ok {
		return mailsec.Errorf(mailsec.Config, d.Name(), nil, "the POP3 login driver needs a POP3 session")
	}
	// An empty user or password is a missing setting; sending it would
	// only spend one of the server's failed-login allowances.
	if d.Cred.Username == "" || (d.Cred.Password == "" && d.Method != "") {
		return mailsec.Errorf(mailsec.Config, d.Name(), nil, "%s needs a user name and a password", d.Name())
	}
	method := d.Method
	if method == "" {
		if mech := sasl.Strongest(c.Caps().Auth, c.State(), d.Cred); mech != "" {
			a := security.NewAuth(mech, d.Cred)
			if err := a.Open(ctx, c); err != nil {
				return err
			}
			d.used = "SASL " + mech
			return nil
		}
		if d.Cred.Password == "" {
			return mailsec.Errorf(mailsec.Config, d.Name(), nil, "no usable SASL mechanism for these credentials, and USER/PASS needs a password")
		}
		method = MechUser
	}
	var err error
	if method == MechAPOP {
		err = c.APOP(ctx, d.Cred.Username, d.Cred.Password)
	} else {
		err = c.Login(ctx, d.Cred.Username, d.Cred.Password)
	}
	if err == nil {
		d.used = method
	}
	return err
}

// Close has nothing to do: the login ends with the session.
func (d *Login) Close(context.Context, security.Conn) error { return nil }

// Info reports the method used.
func (d *Login) Info() map[string]string {
	if d.used == "" {
		return nil
	}
	return map[string]string{"mechanism": d.used}
}
