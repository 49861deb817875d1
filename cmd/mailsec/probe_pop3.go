package main

import (
	"context"
	"strings"
	"time"

	"github.com/mailsec/mailsec/pop3"
	"github.com/mailsec/mailsec/tlsconf"
)

// runProbePOP3 is probe --pop3: CAPA before and after STLS (or under
// implicit TLS), the TLS facts, and warnings for logins offered in plain
// text. It never logs in.
func runProbePOP3(ctx context.Context, cf *connFlags, res *probeResult) error {
	addr, port, o, err := pop3Options(ctx, cf, false)
	if err != nil {
		return err
	}
	res.Server = addr
	o.TLS.Observe = res.observe
	implicit := o.TLSMode.For(port) == pop3.TLSImplicit
	if !implicit {
		// STLS is run by hand below, to see CAPA on both sides of it.
		o.TLSMode = pop3.TLSNone
	}
	c, err := dialPOP3(ctx, cf, addr, o)
	if err != nil {
		return err
	}
	defer c.Close()
	res.Greeting = c.Greeting()
	if !implicit {
		res.BeforeTLS = pop3Stage(c)
		if len(res.BeforeTLS.Auth) > 0 {
			res.Warnings = append(res.Warnings, "SASL is offered before TLS ("+strings.Join(res.BeforeTLS.Auth, " ")+"): clients may send credentials in plain text")
		}
		if c.Caps().UserPass && res.BeforeTLS.Extensions != nil {
			res.Warnings = append(res.Warnings, "USER is offered before TLS: clients may send passwords in plain text")
		}
		if !res.BeforeTLS.StartTLS {
			res.Warnings = append(res.Warnings, "STLS is not offered: mail and passwords to this server travel in plain text")
			return c.Quit(ctx)
		}
		if err := c.StartTLS(ctx); err != nil {
			return err
		}
		if err := c.Requery(ctx); err != nil {
			return err
		}
	}
	res.AfterTLS = pop3Stage(c)
	res.Verified = !cf.insecure && !cf.noNameCheck
	if st := c.TLS(); st != nil {
		f := tlsconf.FactsOf(st)
		res.TLS = &f
		if len(f.Chain) > 0 && time.Until(f.Chain[0].NotAfter) < 14*24*time.Hour {
			res.Warnings = append(res.Warnings, "the server certificate expires on "+f.Chain[0].NotAfter.Format(time.DateOnly))
		}
	}
	return c.Quit(ctx)
}

// pop3Stage is the CAPA list at one point of the session; a server without
// CAPA gives an empty list.
func pop3Stage(c *pop3.Client) *probeStage {
	caps := c.Caps()
	return &probeStage{Extensions: c.Capabilities(), StartTLS: caps.StartTLS, Auth: caps.Auth}
}
