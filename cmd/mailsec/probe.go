package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailsec/mailsec/smtp"
	"github.com/mailsec/mailsec/tlsconf"
)

func init() { commands = append(commands, probeCmd()) }

// probeStage is what the server announced at one point of the session.
type probeStage struct {
	Extensions []string `json:"extensions"`
	StartTLS   bool     `json:"starttls"`
	Auth       []string `json:"auth,omitempty"`
}

// probeResult is the --json output of probe.
type probeResult struct {
	OK        bool           `json:"ok"`
	Server    string         `json:"server"`
	Greeting  string         `json:"greeting,omitempty"`
	BeforeTLS *probeStage    `json:"before_tls,omitempty"`
	AfterTLS  *probeStage    `json:"after_tls,omitempty"`
	TLS       *tlsconf.Facts `json:"tls,omitempty"`
	Verified  bool           `json:"verified"`
	Warnings  []string       `json:"warnings,omitempty"`
	Error     *jsonError     `json:"error,omitempty"`
	seen      *tls.ConnectionState
}

// observe shows the chain before it is verified, so that a rejected one is
// seen too, and keeps the state so that the revocation verdicts, known only
// once verification ends, can be added to it.
func (r *probeResult) observe(cs tls.ConnectionState) {
	r.seen = &cs
	f := tlsconf.FactsOf(&cs)
	r.TLS = &f
}

func probeCmd() *cobra.Command {
	var (
		cf       connFlags
		pop3Flag bool
	)
	cmd := &cobra.Command{
		Use:   "probe --server HOST:PORT [--pop3]",
		Short: "Show what a server offers before and after TLS, and its certificate chain",
		RunE: func(cmd *cobra.Command, _ []string) error {
			res := &probeResult{Server: cf.server}
			run := runProbe
			if pop3Flag {
				run = runProbePOP3
			}
			err := run(cmd.Context(), &cf, res)
			if res.seen != nil && res.TLS != nil && len(res.TLS.Revocation) == 0 {
				res.TLS.Revocation = tlsconf.FactsOf(res.seen).Revocation
			}
			res.OK = err == nil
			res.Error = toJSONError(err)
			if cf.json {
				printJSON(res)
			} else {
				printProbe(res)
			}
			return err
		},
	}
	cf.register(cmd.Flags(), "587")
	cmd.Flags().BoolVar(&pop3Flag, "pop3", false, "probe a POP3 server (CAPA before and after STLS; default port 995)")
	return cmd
}

func runProbe(ctx context.Context, cf *connFlags, res *probeResult) error {
	// The probe never authenticates; it records the chain even when
	// verification rejects it, so the user sees what was wrong.
	addr, port, opts, err := smtpOptions(ctx, cf, false)
	if err != nil {
		return err
	}
	res.Server = addr
	opts.TLS.Observe = res.observe
	implicit := opts.TLSMode.For(port) == smtp.TLSImplicit
	if !implicit {
		// STARTTLS is run by hand below, to see the capabilities on
		// both sides of it.
		opts.TLSMode = smtp.TLSNone
	}
	c, err := connect(ctx, cf, addr, opts)
	if err != nil {
		return err
	}
	defer c.Close()
	res.Greeting = c.Greeting()
	if !implicit {
		res.BeforeTLS = stage(c)
		if len(res.BeforeTLS.Auth) > 0 {
			res.Warnings = append(res.Warnings, "AUTH is offered before TLS ("+strings.Join(res.BeforeTLS.Auth, " ")+"): clients may send credentials in plain text")
		}
		if !res.BeforeTLS.StartTLS {
			res.Warnings = append(res.Warnings, "STARTTLS is not offered: mail to this server travels in plain text")
			return c.Quit(ctx)
		}
		if err := c.StartTLS(ctx); err != nil {
			return err
		}
		if err := c.Requery(ctx); err != nil {
			return err
		}
	}
	res.AfterTLS = stage(c)
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

func stage(c *smtp.Client) *probeStage {
	s := &probeStage{}
	for k, v := range c.Extensions() {
		s.Extensions = append(s.Extensions, strings.TrimSpace(k+" "+v))
	}
	sort.Strings(s.Extensions)
	caps := c.Caps()
	s.StartTLS, s.Auth = caps.StartTLS, caps.Auth
	return s
}

func printProbe(r *probeResult) {
	w := os.Stdout
	fmt.Fprintf(w, "server    %s\n", r.Server)
	if r.Greeting != "" {
		fmt.Fprintf(w, "greeting  %s\n", r.Greeting)
	}
	for _, st := range []struct {
		name string
		s    *probeStage
	}{{"before TLS", r.BeforeTLS}, {"after TLS", r.AfterTLS}} {
		if st.s != nil {
			fmt.Fprintf(w, "%s: %s\n", st.name, strings.Join(st.s.Extensions, ", "))
		}
	}
	if r.TLS != nil {
		fmt.Fprintf(w, "TLS       %s %s %s (verified: %v)\n", r.TLS.Version, r.TLS.CipherSuite, r.TLS.Group, r.Verified && r.OK)
		for i, c := range r.TLS.Chain {
			fmt.Fprintf(w, "  cert %d  %s\n          issuer %s, expires %s, %s\n", i, c.Subject, c.Issuer,
				c.NotAfter.Format(time.DateOnly), c.SPKIPin)
		}
		for i, s := range r.TLS.Revocation {
			fmt.Fprintf(w, "  revocation %d  %s: %s\n", i, s.Subject, revocationLine(s))
		}
	}
	for _, wn := range r.Warnings {
		fmt.Fprintf(w, "WARNING   %s\n", wn)
	}
}

// revocationLine says what the revocation check found for one certificate
// and how.
func revocationLine(s tlsconf.CertStatus) string {
	switch s.Status {
	case tlsconf.StatusGood, tlsconf.StatusRevoked:
		line := string(s.Status) + " per " + strings.TrimSpace(s.Source+" "+s.URL)
		if s.Status == tlsconf.StatusRevoked {
			line += ", revoked " + s.RevokedAt.Format(time.RFC3339) + ", " + s.Reason
		}
		if !s.NextUpdate.IsZero() {
			line += ", next update " + s.NextUpdate.Format(time.RFC3339)
		}
		if s.Cached {
			line += " (cached)"
		}
		return line
	}
	return string(s.Status) + ": " + strings.Join(s.Tried, "; ")
}
