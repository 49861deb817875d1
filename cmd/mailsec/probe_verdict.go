package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/tlsconf"
)

// probeVerdict is what a person acts on after a probe, in --json as
// "verdict". Each field is empty when the probe did not get that far.
type probeVerdict struct {
	// StartTLS is "yes" or "no" for STARTTLS (STLS) offered in plain
	// text, "implicit" when TLS came first.
	StartTLS string `json:"starttls,omitempty"`
	// AuthBeforeTLS lists the logins offered in plain text; "" and false
	// Offered mean none.
	AuthBeforeTLS        []string `json:"auth_before_tls,omitempty"`
	AuthOfferedBeforeTLS bool     `json:"auth_offered_before_tls"`
	// Certificate is "verified", "not verified" (checks turned off) or
	// "rejected" (the handshake refused it); DaysLeft is the server
	// certificate's remaining validity, negative once expired.
	Certificate string `json:"certificate,omitempty"`
	DaysLeft    *int   `json:"days_left,omitempty"`
	// Revocation is "good", "revoked", "unknown" or "not checked", over
	// the certificates checked (never the root: a trust anchor is
	// revoked by removing it).
	Revocation string `json:"revocation,omitempty"`

	lines [][2]string // label and text, in order
}

// judge draws the verdicts from a finished probe: r as far as it got,
// err what ended it.
func judge(r *probeResult, cf *connFlags, err error) *probeVerdict {
	v := &probeVerdict{}
	cmd := r.tlsCmd
	switch {
	case r.BeforeTLS != nil && r.BeforeTLS.StartTLS:
		v.StartTLS = "yes"
		v.add(cmd+" offered", "yes")
	case r.BeforeTLS != nil:
		v.StartTLS = "no"
		v.add(cmd+" offered", "NO: mail to this server travels in plain text")
	case r.AfterTLS != nil || r.TLS != nil:
		v.StartTLS = "implicit"
		v.add(cmd+" offered", "not needed: implicit TLS")
	}
	if r.BeforeTLS != nil {
		v.AuthBeforeTLS = r.BeforeTLS.Auth
		if r.BeforeTLS.UserPass {
			v.AuthBeforeTLS = append(v.AuthBeforeTLS, "USER")
		}
		v.AuthOfferedBeforeTLS = len(v.AuthBeforeTLS) > 0
		if v.AuthOfferedBeforeTLS {
			v.add(r.authLabel+" offered before TLS", "YES ("+strings.Join(v.AuthBeforeTLS, " ")+"): credentials may travel in plain text")
		} else {
			v.add(r.authLabel+" offered before TLS", "no")
		}
	}
	if r.TLS != nil {
		v.certificate(r, cf, err)
		v.revocation(r.TLS.Revocation, cf)
	}
	if r.Login != "" {
		v.add("login", "accepted ("+r.Login+")")
	}
	return v
}

func (v *probeVerdict) add(label, text string) { v.lines = append(v.lines, [2]string{label, text}) }

// certificate judges the server's certificate.
func (v *probeVerdict) certificate(r *probeResult, cf *connFlags, err error) {
	var text string
	switch code := mailsec.CodeOf(err); {
	case code == mailsec.TLSCertificate || code == mailsec.TLSCertName:
		v.Certificate, text = "rejected", "REJECTED ("+code.String()+")"
	case cf.insecure:
		v.Certificate, text = "not verified", "NOT verified (--insecure-skip-verify)"
	case cf.noNameCheck:
		v.Certificate, text = "not verified", "chain verified, name NOT checked (--no-name-check)"
	case r.Verified:
		v.Certificate, text = "verified", "verified"
	default:
		return
	}
	if len(r.TLS.Chain) > 0 {
		days := int(time.Until(r.TLS.Chain[0].NotAfter) / (24 * time.Hour))
		v.DaysLeft = &days
		switch {
		case days < 0:
			text += fmt.Sprintf(", EXPIRED %d days ago", -days)
		case days == 1:
			text += ", 1 day left"
		default:
			text += fmt.Sprintf(", %d days left", days)
		}
	}
	v.add("certificate", text)
}

// revocation judges the revocation statuses of the certificates checked.
func (v *probeVerdict) revocation(sts []tlsconf.CertStatus, cf *connFlags) {
	var checked []tlsconf.CertStatus
	for _, s := range sts {
		if s.Status != tlsconf.StatusNotChecked {
			checked = append(checked, s)
		}
	}
	switch {
	case cf.revocation == "off":
		v.Revocation = "not checked"
		v.add("revocation", "not checked (--revocation off)")
		return
	case len(checked) == 0:
		return
	}
	v.Revocation = "good"
	text := "good"
	for _, s := range checked {
		switch s.Status {
		case tlsconf.StatusRevoked:
			v.Revocation, text = "revoked", "REVOKED: "+s.Subject
		case tlsconf.StatusGood:
		default:
			if v.Revocation == "good" {
				v.Revocation, text = "unknown", "unknown for "+s.Subject+" ("+string(s.Status)+")"
			}
		}
		if v.Revocation == "revoked" {
			break
		}
	}
	v.add("revocation", text)
}

// print writes the verdict lines, labels aligned.
func (v *probeVerdict) print(out func(format string, args ...any)) {
	width := 0
	for _, l := range v.lines {
		width = max(width, len(l[0])+1)
	}
	for _, l := range v.lines {
		out("%-*s %s", width, l[0]+":", l[1])
	}
}
