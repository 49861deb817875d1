package main

import (
	"crypto/tls"
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
	if st := c.TLS(); st != nil {
		facts := tlsconf.FactsOf(st)
		f.TLS, f.TLSUsed = &facts, true
	} else {
		fmt.Fprintln(os.Stderr, "mailsec: WARNING: the session is not encrypted (no TLS); "+what+" in plain text")
	}
	f.Security = c.Security().Reports()
}
