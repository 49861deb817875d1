package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"os"

	"github.com/mailsec/mailsec/security"
	"github.com/mailsec/mailsec/tlsconf"
)

// sessionFacts is the part of the --json output of send and fetch that
// says how the session was secured.
type sessionFacts struct {
	TLSUsed  bool              `json:"tls_used"`
	TLS      *tlsconf.Facts    `json:"tls"`
	Security []security.Report `json:"security,omitempty"`
}

// secured is what sessionFacts reads from an SMTP or POP3 session.
type secured interface {
	TLS() *tls.ConnectionState
	Security() *security.Context
}

// record fills the facts from c. A session without TLS is worth a warning
// on stderr even under --json, since the user may not have asked for it;
// what says what travels in plain text.
func (f *sessionFacts) record(c secured, what string) {
	if !f.fill(c) {
		fmt.Fprintln(os.Stderr, "mailsec: WARNING: the session is not encrypted (no TLS); "+what+" in plain text")
	}
}

// recordFailed fills the facts from a session that failed while it was set
// up: what was secured before the failure (TLS done, login refused). The
// session carried nothing, so there is nothing to warn about.
func (f *sessionFacts) recordFailed(err error) {
	var se *security.SessionError
	if errors.As(err, &se) {
		f.fill(se)
	}
}

// fill copies the TLS facts and driver reports of c and says whether the
// session was under TLS.
func (f *sessionFacts) fill(c secured) bool {
	if st := c.TLS(); st != nil {
		facts := tlsconf.FactsOf(st)
		f.TLS, f.TLSUsed = &facts, true
	}
	f.Security = c.Security().Reports()
	return f.TLSUsed
}
