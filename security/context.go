// Package security implements the security context (docs/requirements.md): an
// ordered queue of drivers (STARTTLS, authentication mechanisms) that are
// verified against the server's capabilities and then opened, split at the
// first supported TLS driver so that the drivers after it are verified
// against the capabilities the server announces under TLS.
//
// The package knows no protocol: SMTP and POP3 clients implement Conn, and
// the drivers act only through it.
package security

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/sasl"
)

// Use says what happens when the server does not support a driver.
type Use int

const (
	// Mandatory makes an unsupported driver an error (Uniface's USE=MAND).
	Mandatory Use = iota
	// Optional skips an unsupported driver (USE=OPT).
	Optional
)

// String returns "MAND" or "OPT", Uniface's spelling.
func (u Use) String() string {
	if u == Optional {
		return "OPT"
	}
	return "MAND"
}

// Caps is a server's capability list as a driver sees it: EHLO keywords for
// SMTP, CAPA lines for POP3, normalised to upper case.
type Caps struct {
	// StartTLS is true when the server offers STARTTLS (SMTP) or STLS (POP3).
	StartTLS bool
	// Auth lists the SASL mechanisms offered, upper case, in server order.
	Auth []string
	// Plain login commands (POP3 USER/PASS) are offered.
	UserPass bool
}

// HasAuth reports whether mech is among the offered SASL mechanisms.
func (c Caps) HasAuth(mech string) bool {
	for _, m := range c.Auth {
		if strings.EqualFold(m, mech) {
			return true
		}
	}
	return false
}

// Conn is the protocol session the drivers act on.
type Conn interface {
	// Caps returns the capabilities from the last query.
	Caps() Caps
	// Requery discards the cached capabilities and asks the server again
	// (EHLO or CAPA). It is called after TLS starts, as the security context requires.
	Requery(ctx context.Context) error
	// StartTLS runs STARTTLS/STLS and the TLS handshake.
	StartTLS(ctx context.Context) error
	// Authenticate runs one SASL exchange with the mechanism.
	Authenticate(ctx context.Context, m sasl.Client) error
	// State returns the SASL view of the connection (TLS state, host).
	State() sasl.ConnState
}

// Driver is one entry of a security context.
type Driver interface {
	// Name identifies the driver in runtime info and errors
	// ("STARTTLS", "AUTH SCRAM-SHA-256").
	Name() string
	// Supported reports whether the server supports the driver (the security
	// context's verification step).
	Supported(c Caps, s sasl.ConnState) bool
	// Open implements the driver's function on the connection.
	Open(ctx context.Context, c Conn) error
	// Close runs the driver's closing protocol, if it has one.
	Close(ctx context.Context, c Conn) error
	// Info returns the driver's runtime information after Open (Uniface's
	// GetSecurity RuntimeInfo).
	Info() map[string]string
}

// TLSDriver is implemented by drivers that upgrade the connection to TLS.
// Verification stops at the first supported one (docs/requirements.md).
type TLSDriver interface {
	Driver
	StartsTLS()
}

// Entry is one driver in a context, with its use.
type Entry struct {
	Driver Driver
	Use    Use
}

// Status is what happened to one driver on Open.
type Status string

// The statuses a driver can end in.
const (
	StatusPending Status = "pending" // not reached (an earlier driver failed)
	StatusOpen    Status = "open"    // opened successfully
	StatusSkipped Status = "skipped" // optional and not supported
	StatusFailed  Status = "failed"  // its Open failed, or mandatory and unsupported
	StatusClosed  Status = "closed"  // opened, then closed
)

// Report describes one driver after Open: Uniface's GetSecurity, which
// returns the driver's properties and its runtime information.
type Report struct {
	Number int               `json:"number"` // 1-based position in the context
	Name   string            `json:"name"`
	Use    string            `json:"use"`
	Status Status            `json:"status"`
	Info   map[string]string `json:"info,omitempty"`
}

// Context is an ordered queue of drivers. The zero value is an empty context
// ready for Add. A Context is used for one connection at a time.
type Context struct {
	entries []Entry
	status  []Status
	opened  []int // indexes of opened drivers, in opening order
}

// Add appends a driver, as one SetSecurity call does.
func (sc *Context) Add(d Driver, u Use) {
	sc.entries = append(sc.entries, Entry{Driver: d, Use: u})
}

// Entries returns the drivers in order.
func (sc *Context) Entries() []Entry { return append([]Entry(nil), sc.entries...) }

// Open runs the context on c: drivers are verified in order; at the first
// supported TLS driver verification pauses, every driver verified so far is
// opened, the capabilities are queried again, and verification resumes with
// the remaining drivers against the new list. An unsupported mandatory
// driver, or a driver whose Open fails, stops the process; drivers already
// opened are then closed in reverse order and the first error is returned.
func (sc *Context) Open(ctx context.Context, c Conn) error {
	sc.status = make([]Status, len(sc.entries))
	for i := range sc.status {
		sc.status[i] = StatusPending
	}
	sc.opened = sc.opened[:0]
	next := 0
	for next < len(sc.entries) {
		caps := c.Caps()
		state := c.State()
		var batch []int
		tlsSplit := false
		var verr error
		for next < len(sc.entries) {
			i := next
			next++
			e := sc.entries[i]
			if !e.Driver.Supported(caps, state) {
				if e.Use == Optional {
					sc.status[i] = StatusSkipped
					continue
				}
				sc.status[i] = StatusFailed
				verr = unsupported(i, e.Driver, caps)
				break
			}
			batch = append(batch, i)
			if _, ok := e.Driver.(TLSDriver); ok {
				tlsSplit = true
				break
			}
		}
		// Seed 001: the drivers verified before the failure are not opened;
		// what failed verification aborts the whole context.
		if verr != nil {
			sc.unwind(ctx, c)
			return verr
		}
		for _, i := range batch {
			if err := sc.entries[i].Driver.Open(ctx, c); err != nil {
				sc.status[i] = StatusFailed
				sc.unwind(ctx, c)
				return err
			}
			sc.status[i] = StatusOpen
			sc.opened = append(sc.opened, i)
		}
		if tlsSplit {
			if err := c.Requery(ctx); err != nil {
				sc.unwind(ctx, c)
				return err
			}
		}
	}
	return nil
}

// Close calls every opened driver's Close in reverse order. Errors do not
// stop the unwinding (docs/requirements.md); they are joined and returned.
func (sc *Context) Close(ctx context.Context, c Conn) error {
	var errs []error
	for k := len(sc.opened) - 1; k >= 0; k-- {
		i := sc.opened[k]
		if err := sc.entries[i].Driver.Close(ctx, c); err != nil {
			errs = append(errs, err)
		}
		sc.status[i] = StatusClosed
	}
	sc.opened = sc.opened[:0]
	return errors.Join(errs...)
}

func (sc *Context) unwind(ctx context.Context, c Conn) {
	// Close errors during unwinding are secondary to the error that caused
	// it; the caller gets that one.
	_ = sc.Close(ctx, c)
}

// Reports returns one Report per driver, in context order.
func (sc *Context) Reports() []Report {
	out := make([]Report, len(sc.entries))
	for i, e := range sc.entries {
		st := StatusPending
		if i < len(sc.status) {
			st = sc.status[i]
		}
		r := Report{Number: i + 1, Name: e.Driver.Name(), Use: e.Use.String(), Status: st}
		if st == StatusOpen || st == StatusClosed {
			r.Info = e.Driver.Info()
		}
		out[i] = r
	}
	return out
}

func unsupported(i int, d Driver, caps Caps) error {
	if _, ok := d.(TLSDriver); ok {
		return &mailsec.Error{Code: mailsec.StartTLSUnavailable, Op: d.Name(),
			Detail: fmt.Sprintf("driver %d (%s) is mandatory but the server does not offer it; nothing was sent in plain", i+1, d.Name())}
	}
	offered := "none"
	if len(caps.Auth) > 0 {
		offered = strings.Join(caps.Auth, " ")
	}
	return &mailsec.Error{Code: mailsec.AuthUnavailable, Op: d.Name(),
		Detail: fmt.Sprintf("driver %d (%s) is mandatory but the server does not support it (offered: %s)", i+1, d.Name(), offered)}
}
