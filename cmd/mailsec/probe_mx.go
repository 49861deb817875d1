package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/relay"
	"github.com/mailsec/mailsec/server"
)

// mxFlags are the flags of "mailsec probe --mx DOMAIN".
type mxFlags struct {
	domain      string
	serveConfig string
	resolver    string
	port        int
	caFile      string
	noConnect   bool
}

// mxProbe is the --json result of "mailsec probe --mx".
type mxProbe struct {
	OK     bool               `json:"ok"`
	Plan   *relay.Plan        `json:"plan"`
	Checks []*relay.HostCheck `json:"checks,omitempty"`
	Error  *jsonError         `json:"error,omitempty"`
}

// runProbeMX explains the relay's plan for a domain, with the settings of
// mailsec serve's configuration, then opens a session with each host it
// would use, as a delivery would, to show whether TLS would get through.
func runProbeMX(ctx context.Context, mf *mxFlags, timeout time.Duration, asJSON bool, w io.Writer) error {
	cfg, err := loadServeConfig(mf.serveConfig, "", "")
	if err != nil {
		return err
	}
	if mf.resolver != "" {
		cfg.Relay.Resolver = mf.resolver
	}
	if mf.port != 0 {
		cfg.Relay.Port = mf.port
	}
	if mf.caFile != "" {
		cfg.Relay.CAFile = mf.caFile
	}
	o, err := server.RelayOptions(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	o.CommandTimeout = timeout
	o.ConnectTimeout = timeout
	r, err := relay.New(o)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 4*timeout)
	defer cancel()
	res := &mxProbe{Plan: r.Explain(ctx, mf.domain)}
	if !mf.noConnect {
		for i, h := range res.Plan.Hosts {
			if h.Skipped != "" || len(h.Addrs) == 0 {
				res.Checks = append(res.Checks, nil)
				continue
			}
			res.Checks = append(res.Checks, r.Check(ctx, res.Plan, i))
		}
	}
	switch {
	case res.Plan.Error != "":
		err = mailsec.Errorf(mailsec.DNS, "probe", nil, "%s", res.Plan.Error)
	case !mf.noConnect:
		err = noHostWouldDo(res.Checks)
	}
	res.OK = err == nil
	res.Error = toJSONError(err)
	if asJSON {
		printJSON(res)
	} else {
		printMXProbe(w, res)
	}
	return err
}

// printMXProbe is the human view: one block per host, the verdict first.
func printMXProbe(w io.Writer, res *mxProbe) {
	p := res.Plan
	fmt.Fprintf(w, "domain:      %s\npolicy:      %s\n", p.Domain, p.Policy)
	if p.NextHop != "" {
		fmt.Fprintf(w, "next hop:    %s (route or smarthost; no MX lookup)\n", p.NextHop)
	} else {
		sec := "not signed (or not validated)"
		if p.MXSecure {
			sec = "DNSSEC-authenticated"
		}
		if !p.DNSSEC {
			sec += "; the resolver is not trusted for DNSSEC, so DANE is off"
		}
		fmt.Fprintf(w, "MX answer:   %s\n", sec)
	}
	if s := p.MTASTS; s != nil {
		fmt.Fprintf(w, "MTA-STS:     mode %s, mx %s, max_age %s, id %s (%s)", orDash(s.Mode), orDash(strings.Join(s.MX, " ")),
			s.MaxAge, orDash(s.ID), orDash(s.Source))
		if s.Error != "" {
			fmt.Fprintf(w, "; %s", mailsec.Printable(s.Error))
		}
		fmt.Fprintln(w)
	} else if p.NextHop == "" {
		fmt.Fprintln(w, "MTA-STS:     none published")
	}
	if p.Error != "" {
		fmt.Fprintf(w, "result:      %s (%s)\n", mailsec.Printable(p.Error), map[bool]string{true: "bounces", false: "waits"}[p.Permanent])
		return
	}
	for i, h := range p.Hosts {
		fmt.Fprintf(w, "\nhost %d:      %s [%s]", i+1, h.Name, strings.Join(h.Addrs, " "))
		if h.Secure {
			fmt.Fprint(w, " (addresses DNSSEC-authenticated)")
		}
		fmt.Fprintf(w, "\n  policy:    %s", h.Policy)
		if h.Authenticated {
			fmt.Fprint(w, ", server authenticated")
		}
		fmt.Fprintln(w)
		for _, t := range h.TLSA {
			fmt.Fprintf(w, "  TLSA:      %s\n", t)
		}
		if h.Skipped != "" {
			fmt.Fprintf(w, "  skipped:   %s\n", mailsec.Printable(h.Skipped))
			continue
		}
		if i < len(res.Checks) && res.Checks[i] != nil {
			c := res.Checks[i]
			if c.OK {
				fmt.Fprintf(w, "  session:   %s OK, %s %s, certificate %s, REQUIRETLS %v\n", c.Addr, orDash(c.Version),
					orDash(c.CipherSuite), orDash(c.Verdict), c.RequireTLS)
			} else {
				fmt.Fprintf(w, "  session:   %s FAILED (%s): %s\n", c.Addr, orDash(c.Code), mailsec.Printable(c.Error))
			}
		}
	}
}

// noHostWouldDo is the error of a probe in which no session got through
// as its policy demands, coded as the first host's failure, so that the
// exit status says what a delivery would meet now; nil when one did.
func noHostWouldDo(checks []*relay.HostCheck) error {
	var first *relay.HostCheck
	for _, c := range checks {
		if c == nil {
			continue
		}
		if c.OK {
			return nil
		}
		if first == nil {
			first = c
		}
	}
	var code mailsec.Code
	detail := "no host would take the message now"
	if first != nil {
		code, _ = mailsec.ParseCode(first.Code)
		detail += ": " + first.Addr + ": " + first.Error
	}
	if code == 0 {
		code = mailsec.TCPConnect
	}
	return mailsec.Errorf(code, "probe", nil, "%s", detail)
}
