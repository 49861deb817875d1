package sasl

import "strings"

// preference ranks the mechanisms, strongest first. Tokens come before
// passwords: a user who configured a token meant it, and a token is scoped
// and revocable. Among password mechanisms SCRAM leads (the server proves
// itself and keeps no plaintext-equivalent secret, RFC 5802 section 1),
// channel-bound variants before the others; PLAIN and LOGIN under TLS come
// next, ahead of CRAM-MD5, which forces the server to store a
// plaintext-equivalent secret and is less widely supported; NTLM, with
// neither server nor channel authentication, comes last.
var preference = []string{
	OAuthBearer, XOAuth2,
	SCRAMSHA256Plus, SCRAMSHA256, SCRAMSHA1Plus, SCRAMSHA1,
	Plain, Login, CRAMMD5, NTLM,
}

// Strongest returns the strongest mechanism among offered (the server's
// list, any case) that can run with cred on the connection cs, or "" if
// none can. Off TLS nothing is eligible unless cs.AllowPlaintext: the
// credentials never leave before TLS without the user's explicit consent.
// A -PLUS mechanism needs TLS with a usable channel binding.
func Strongest(offered []string, cs ConnState, cred Credentials) string {
	if cs.TLS == nil && !cs.AllowPlaintext {
		return ""
	}
	for _, mech := range preference {
		if !offers(offered, mech) {
			continue
		}
		if NeedsTLS(mech) {
			if cs.TLS == nil {
				continue
			}
			if _, err := channelBinding(cs.TLS); err != nil {
				continue
			}
		}
		// NewClient applies the same checks on the credentials that
		// would make the mechanism fail later.
		if _, err := NewClient(mech, cred); err == nil {
			return mech
		}
	}
	return ""
}

func offers(offered []string, mech string) bool {
	for _, o := range offered {
		if strings.EqualFold(strings.TrimSpace(o), mech) {
			return true
		}
	}
	return false
}
