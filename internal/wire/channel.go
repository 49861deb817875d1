package wire

import (
	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/tlsconf"
)

// Channel says how what the server sends now reaches the client: in plain
// text, under TLS without an authenticated server, or under TLS with one.
// The clients record it in each reply, so that text a man in the middle
// could have written is marked wherever it is shown.
func (s *Session) Channel() mailsec.Channel {
	switch {
	case s.TLS == nil:
		return mailsec.ChannelCleartext
	case !authenticates(s.cfg.TLS):
		return mailsec.ChannelUnverifiedTLS
	}
	return mailsec.ChannelVerified
}

// authenticates reports whether the TLS options prove the server's
// identity: a chain verified to a name the host has, a pinned key, or the
// caller's own check (DANE). A chain without the name check proves only
// that some CA vouched for someone.
func authenticates(o *tlsconf.Options) bool {
	if o == nil {
		return true
	}
	return len(o.Pins) > 0 || o.VerifyPeer != nil || (!o.NoServerCertificateValidation && !o.NoServerNameCheck)
}
