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

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/security"
	"github.com/mailsec/mailsec/smtp"
	"github.com/mailsec/mailsec/tlsconf"
)

func init() { commands = append(commands, probeCmd()) }

// probeStage is what the server announced at one point of the session.
type probeStage struct {
	Extensions []string `json:"extensions"`
	StartTLS   bool     `json:"starttls"`
	Auth       []string `json:"auth,omitempty"`
	// UserPass is POP3's USER/PASS offered (RFC 2449 section 6.8).
	UserPass bool `json:"user_pass,omitempty"`
	// Channel says whether anyone on the path could have written the
	// announcement: cleartext before TLS, unverified-tls when the
	// certificate was not verified.
	Channel mailsec.Channel `json:"channel"`
}

// probeResult is the --json output of probe.
type probeResult struct {
	OK       bool   `json:"ok"`
	Server   string `json:"server"`
	Greeting string `json:"greeting,omitempty"`
	// GreetingChannel is how the greeting arrived (probeStage.Channel),
	// when there was one.
	GreetingChannel string `json:"greeting_channel,omitempty"`
	greetingCh      mailsec.Channel
	BeforeTLS       *probeStage    `json:"before_tls,omitempty"`
	AfterTLS        *probeStage    `json:"after_tls,omitempty"`
	Login           string         `json:"login,omitempty"` // the mechanism of a login that succeeded, with --user
	TLS             *tlsconf.Facts `json:"tls,omitempty"`
	Verified        bool           `json:"verified"`
	Warnings        []string       `json:"warnings,omitempty"`
	Verdict         *probeVerdict  `json:"verdict"`
	Error           *jsonError     `json:"error,omitempty"`
	seen            *tls.ConnectionState
	// tlsCmd and authLabel name the protocol's STARTTLS and login in the
	// verdicts.
	tlsCmd, authLabel string
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
		mf       mxFlags
	)
	cmd := &cobra.Command{
		Use:   "probe --server HOST:PORT [--pop3] | --mx DOMAIN",
		Short: "Show what a server offers before and after TLS, and its certificate chain; or, with --mx, the TLS policy the relay would apply to a domain and why",
		RunE: func(cmd *cobra.Command, _ []string) error {
			if mf.domain != "" {
				mf.caFile = cf.caFile
				return runProbeMX(cmd.Context(), &mf, cf.timeout, cf.json, cmd.OutOrStdout())
			}
			res := &probeResult{Server: cf.server, tlsCmd: "STARTTLS", authLabel: "AUTH"}
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
			res.Verdict = judge(res, &cf, err)
			res.markChannels()
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
	cmd.Flags().StringVar(&mf.domain, "mx", "", "explain outbound delivery to DOMAIN: MX hosts, DNSSEC, TLSA records, MTA-STS policy, and a test session with each host")
	cmd.Flags().StringVar(&mf.serveConfig, "serve-config", "", "with --mx: mailsec serve's configuration, for its [relay] settings (default: the embedded one)")
	cmd.Flags().StringVar(&mf.resolver, "resolver", "", "with --mx: DNS server host:port (overrides relay.resolver)")
	cmd.Flags().IntVar(&mf.port, "mx-port", 0, "with --mx: destination port (overrides relay.port)")
	cmd.Flags().BoolVar(&mf.noConnect, "no-connect", false, "with --mx: only look up, open no session")
	return cmd
}

func runProbe(ctx context.Context, cf *connFlags, res *probeResult) error {
	co, implicit, err := probeTarget(ctx, cf, res, "587", smtp.ImplicitTLSPort)
	if err != nil {
		return err
	}
	o := co.smtpOptions(cf)
	o.Auth = nil // probeSession logs in itself, after what TLS shows
	c, err := dialWithin(ctx, cf, smtp.Dial, co.addr, o)
	if err != nil {
		return err
	}
	defer c.Close()
	return probeSession(ctx, cf, co, res, smtpProbe{c}, implicit)
}

// probeTarget resolves the flags for a probe and says whether TLS comes
// first. The probe logs in only with --user, under TLS; it records the chain even when
// verification rejects it, so the user sees what was wrong, and it runs
// STARTTLS or STLS by hand (see probeSession), so that the capabilities are
// seen on both sides of it.
func probeTarget(ctx context.Context, cf *connFlags, res *probeResult, defaultPort string, implicitPort int) (*commonOpts, bool, error) {
	co, err := cf.common(ctx, defaultPort, true)
	if err != nil {
		return nil, false, err
	}
	res.Server = co.addr
	co.tls.Observe = res.observe
	if co.mode.Resolve(co.port, implicitPort) == security.TLSImplicit {
		co.mode = security.TLSImplicit
		return co, true, nil
	}
	co.mode = security.TLSNone
	return co, false, nil
}

// probed is a session under probe, SMTP or POP3.
type probed interface {
	security.Conn // StartTLS, Requery, Authenticate, for the login driver
	Greeting() string
	TLS() *tls.ConnectionState
	Quit(ctx context.Context) error
	// stage is what the server announces now.
	stage() *probeStage
	// plainWarnings warns about what the plain-text announcement before
	// exposes: logins offered before TLS, or no STARTTLS/STLS at all.
	plainWarnings(before *probeStage) []string
	// loginDriver is the security driver that logs in with cred and mech
	// (the --auth name, "" for the strongest offered).
	loginDriver(cred sasl.Credentials, mech string) security.Driver
}

// probeSession records what the server offers before TLS (unless it began
// with implicit TLS) and under TLS, with the TLS facts, logs in when the
// flags give a user, then quits.
func probeSession(ctx context.Context, cf *connFlags, co *commonOpts, res *probeResult, c probed, implicit bool) error {
	res.Greeting = c.Greeting()
	if !implicit {
		res.BeforeTLS = c.stage()
		res.Warnings = append(res.Warnings, c.plainWarnings(res.BeforeTLS)...)
		if !res.BeforeTLS.StartTLS {
			return c.Quit(ctx)
		}
		if err := c.StartTLS(ctx); err != nil {
			return err
		}
		if err := c.Requery(ctx); err != nil {
			return err
		}
	}
	res.AfterTLS = c.stage()
	res.Verified = !cf.insecure && !cf.noNameCheck
	if st := c.TLS(); st != nil {
		f := tlsconf.FactsOf(st)
		res.TLS = &f
		if len(f.Chain) > 0 && time.Until(f.Chain[0].NotAfter) < 14*24*time.Hour {
			res.Warnings = append(res.Warnings, "the server certificate expires on "+f.Chain[0].NotAfter.Format(time.DateOnly))
		}
	}
	if co.auth != nil {
		// A context of the one login driver: its verification says what
		// the server offers when the login cannot run.
		sc := &security.Context{}
		sc.Add(c.loginDriver(*co.auth, co.mech), security.Mandatory)
		if err := sc.Open(ctx, c); err != nil {
			return err
		}
		res.Login = sc.Reports()[0].Info["mechanism"]
	}
	return c.Quit(ctx)
}

// smtpProbe is an SMTP session under probe.
type smtpProbe struct{ *smtp.Client }

// stage is the EHLO keywords, sorted.
func (c smtpProbe) stage() *probeStage {
	s := &probeStage{}
	for k, v := range c.Extensions() {
		s.Extensions = append(s.Extensions, strings.TrimSpace(k+" "+v))
	}
	sort.Strings(s.Extensions)
	caps := c.Caps()
	s.StartTLS, s.Auth = caps.StartTLS, caps.Auth
	return s
}

func (smtpProbe) loginDriver(cred sasl.Credentials, mech string) security.Driver {
	return security.NewAuth(mech, cred)
}

func (c smtpProbe) plainWarnings(before *probeStage) []string {
	var w []string
	if len(before.Auth) > 0 {
		w = append(w, "AUTH is offered before TLS ("+strings.Join(before.Auth, " ")+"): clients may send credentials in plain text")
	}
	if !before.StartTLS {
		w = append(w, "STARTTLS is not offered: mail to this server travels in plain text")
	}
	return w
}

// markChannels records how each piece of server text arrived: what came
// before TLS, or under TLS that was not verified, anyone on the path
// could have written, and the output says so wherever it shows it.
func (r *probeResult) markChannels() {
	underTLS := mailsec.ChannelVerified
	if !r.Verified || !r.OK {
		underTLS = mailsec.ChannelUnverifiedTLS
	}
	r.greetingCh = underTLS
	if r.BeforeTLS != nil {
		r.BeforeTLS.Channel = mailsec.ChannelCleartext
		r.greetingCh = mailsec.ChannelCleartext
	}
	if r.AfterTLS != nil {
		r.AfterTLS.Channel = underTLS
	}
	if r.Greeting != "" {
		r.GreetingChannel = r.greetingCh.String()
	}
}

func printProbe(r *probeResult) {
	// Greeting, capabilities and certificate names are the server's words:
	// each line goes to the terminal with its control characters escaped.
	out := func(format string, args ...any) {
		fmt.Fprintln(os.Stdout, mailsec.Printable(fmt.Sprintf(format, args...)))
	}
	marked := func(text string, ch mailsec.Channel) string {
		return strings.TrimSpace(text + " " + ch.Mark())
	}
	out("server    %s", r.Server)
	if r.Greeting != "" {
		// A multi-line banner keeps its lines.
		for i, l := range strings.Split(r.Greeting, "\n") {
			out("%s%s", map[bool]string{true: "greeting  ", false: "          "}[i == 0], marked(l, r.greetingCh))
		}
	}
	for _, st := range []struct {
		name string
		s    *probeStage
	}{{"before TLS", r.BeforeTLS}, {"after TLS", r.AfterTLS}} {
		if st.s != nil {
			out("%s: %s", st.name, marked(strings.Join(st.s.Extensions, ", "), st.s.Channel))
		}
	}
	if r.TLS != nil {
		out("TLS       %s %s %s (verified: %v)", r.TLS.Version, r.TLS.CipherSuite, r.TLS.Group, r.Verified && r.OK)
		for i, c := range r.TLS.Chain {
			out("  cert %d  %s", i, c.Subject)
			out("          issuer %s, expires %s, %s", c.Issuer, c.NotAfter.Format(time.DateOnly), c.SPKIPin)
		}
		for i, s := range r.TLS.Revocation {
			if s.Status == tlsconf.StatusNotChecked && i == len(r.TLS.Revocation)-1 {
				// The root: never checked, since a trust anchor is
				// revoked by taking it out of the trust store.
				continue
			}
			out("  revocation %d  %s: %s", i, s.Subject, revocationLine(s))
		}
	}
	for _, wn := range r.Warnings {
		out("WARNING   %s", wn)
	}
	if r.Verdict != nil && len(r.Verdict.lines) > 0 {
		out("")
		r.Verdict.print(out)
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
