package main

import (
	"context"
	"strings"

	"github.com/mailsec/mailsec/pop3"
)

// runProbePOP3 is probe --pop3: CAPA before and after STLS (or under
// implicit TLS), the TLS facts, and warnings for logins offered in plain
// text. It never logs in.
func runProbePOP3(ctx context.Context, cf *connFlags, res *probeResult) error {
	co, implicit, err := probeTarget(ctx, cf, res, "995", pop3.ImplicitTLSPort)
	if err != nil {
		return err
	}
	c, err := dialWithin(ctx, cf, pop3.Dial, co.addr, co.pop3Options(cf))
	if err != nil {
		return err
	}
	defer c.Close()
	return probeSession(ctx, cf, res, pop3Probe{c}, implicit)
}

// pop3Probe is a POP3 session under probe.
type pop3Probe struct{ *pop3.Client }

// stage is the CAPA list; a server without CAPA gives an empty list.
func (c pop3Probe) stage() *probeStage {
	caps := c.Caps()
	return &probeStage{Extensions: c.Capabilities(), StartTLS: caps.StartTLS, Auth: caps.Auth}
}

func (c pop3Probe) plainWarnings(before *probeStage) []string {
	var w []string
	if len(before.Auth) > 0 {
		w = append(w, "SASL is offered before TLS ("+strings.Join(before.Auth, " ")+"): clients may send credentials in plain text")
	}
	if c.Caps().UserPass && before.Extensions != nil {
		w = append(w, "USER is offered before TLS: clients may send passwords in plain text")
	}
	if !before.StartTLS {
		w = append(w, "STLS is not offered: mail and passwords to this server travel in plain text")
	}
	return w
}
