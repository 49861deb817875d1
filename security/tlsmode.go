package security

import "github.com/mailsec/mailsec"

// TLSMode says how a client secures its connection. It lives here, beside
// the drivers, because it decides which TLS driver a default context gets;
// the SMTP and POP3 clients share it.
type TLSMode int

const (
	// TLSDefault is implicit TLS on the protocol's implicit-TLS port (465
	// for SMTP, 995 for POP3) and mandatory STARTTLS/STLS on any other
	// port: the secure choice for the port the user named.
	TLSDefault TLSMode = iota
	// TLSImplicit starts TLS before the protocol (RFC 8314 section 3.3).
	TLSImplicit
	// TLSStartTLS requires STARTTLS or STLS; a server that does not offer
	// it is an error and nothing else is sent.
	TLSStartTLS
	// TLSStartTLSOptional uses STARTTLS or STLS when offered and continues
	// in plain text otherwise: Domino's outbound "negotiated SSL"
	// (docs/requirements.md). It is open to stripping by an active attacker.
	TLSStartTLSOptional
	// TLSNone never starts TLS.
	TLSNone
)

// Resolve resolves TLSDefault for a port: implicit TLS on implicitPort
// (RFC 8314 section 3.3), mandatory STARTTLS elsewhere. Other modes are
// returned as they are.
func (m TLSMode) Resolve(port, implicitPort int) TLSMode {
	switch {
	case m != TLSDefault:
		return m
	case port == implicitPort:
		return TLSImplicit
	}
	return TLSStartTLS
}

// NewContext returns a context holding the TLS driver the mode asks for:
// STARTTLS, mandatory or optional, or none (resolve TLSDefault first). The
// caller adds its login driver after it, so that credentials wait for TLS.
func (m TLSMode) NewContext() *Context {
	sc := &Context{}
	switch m {
	case TLSStartTLS:
		sc.Add(NewStartTLS(), Mandatory)
	case TLSStartTLSOptional:
		sc.Add(NewStartTLS(), Optional)
	}
	return sc
}

// ParseTLSMode maps the CLI spellings to modes.
func ParseTLSMode(s string) (TLSMode, error) {
	switch s {
	case "", "auto":
		return TLSDefault, nil
	case "implicit":
		return TLSImplicit, nil
	case "starttls":
		return TLSStartTLS, nil
	case "starttls-optional":
		return TLSStartTLSOptional, nil
	case "none":
		return TLSNone, nil
	}
	return 0, mailsec.Errorf(mailsec.Config, "options", nil, "unknown TLS mode %q (implicit, starttls, starttls-optional, none)", s)
}
