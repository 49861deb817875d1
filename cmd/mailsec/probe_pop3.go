package main

import (
	"context"
	"strings"

	"github.com/mailsec/mailsec/pop3"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/security"
)

// runProbePOP3 is probe --pop3: CAPA before and after STLS (or under
// implicit TLS), the TLS facts, and warnings for logins offered in plain
// text. It logs in only with --user.
func runProbePOP3(ctx context.Context, cf *connFlags, res *probeResult) error {
	res.tlsCmd, res.authLabel = "STLS", "login"
	co, implicit, err := probeTarget(ctx, cf, res, "995", pop3.ImplicitTLSPort)
	if err != nil {
		return err
	}
	o := co.pop3Options(cf)
	o.Auth = nil // probeSession logs in itself, after what TLS shows
	c, err := dialWithin(ctx, cf, pop3.Dial, co.addr, o)
	if err != nil {
		return err
	}
	defer c.Close()
	return probeSession(ctx, cf, co, res, pop3Probe{c}, implicit)
}

// pop3Probe is a POP3 session under probe.
type pop3Probe struct{ *pop3.Client }

// stage is the CAPA list; a server without CAPA gives an empty list.
func (c pop3Probe) stage() *probeStage {
	caps := c.Caps()
	// Without CAPA USER is only assumed, not announced.
	ext := c.Capabilities()
	return &probeStage{Extensions: ext, StartTLS: caps.StartTLS, Auth: caps.Auth, UserPass: caps.UserPass && ext != nil}
}

// loginDriver is USER/PASS or APOP for those names, a SASL mechanism for
// the others, and the strongest SASL mechanism or else USER/PASS for "".
func (pop3Probe) loginDriver(cred sasl.Credentials, mech string) security.Driver {
	switch m := strings.ToUpper(mech); m {
	case "", pop3.MechUser, pop3.MechAPOP:
		return pop3.NewLogin(m, cred)
	default:
		return security.NewAuth(m, cred)
	}
}

func (pop3Probe) plainWarnings(before *probeStage) []string {
	var w []string
	if len(before.Auth) > 0 {
		w = append(w, "SASL is offered before TLS ("+strings.Join(before.Auth, " ")+"): clients may send credentials in plain text")
	}
	if before.UserPass {
		w = append(w, "USER is offered before TLS: clients may send passwords in plain text")
	}
	if !before.StartTLS {
		w = append(w, "STLS is not offered: mail and passwords to this server travel in plain text")
	}
	return w
}
