package sasl

import (
	"strconv"
	"strings"

	"github.com/mailsec/mailsec"
)

// The mechanism names mailsec speaks, as registered with IANA and sent in
// AUTH.
const (
	Plain           = "PLAIN"
	Login           = "LOGIN"
	CRAMMD5         = "CRAM-MD5"
	XOAuth2         = "XOAUTH2"
	OAuthBearer     = "OAUTHBEARER"
	SCRAMSHA1       = "SCRAM-SHA-1"
	SCRAMSHA1Plus   = "SCRAM-SHA-1-PLUS"
	SCRAMSHA256     = "SCRAM-SHA-256"
	SCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
	NTLM            = "NTLM"
)

// plusSuffix marks the channel-binding variants (RFC 5802 section 4).
const plusSuffix = "-PLUS"

// NewClient returns the client side of the mechanism called name (any case)
// for cred. It fails with AuthUnavailable for a mechanism mailsec does not
// speak and with Config when cred lacks what the mechanism needs, so that a
// misconfiguration shows before anything is sent.
func NewClient(name string, cred Credentials) (Client, error) {
	switch mech := strings.ToUpper(name); mech {
	case Plain:
		return newPlainClient(cred)
	case Login:
		return newLoginClient(cred)
	case CRAMMD5:
		return newCRAMMD5Client(cred)
	case XOAuth2:
		return newXOAuth2Client(cred)
	case OAuthBearer:
		return newOAuthBearerClient(cred)
	case SCRAMSHA1, SCRAMSHA1Plus, SCRAMSHA256, SCRAMSHA256Plus:
		return newSCRAMClient(mech, cred)
	case NTLM:
		return newNTLMClient(cred)
	default:
		return nil, &mailsec.Error{Code: mailsec.AuthUnavailable, Op: "AUTH",
			Detail: "unknown SASL mechanism " + quote(name)}
	}
}

// NeedsTLS reports whether the mechanism binds the authentication to the
// TLS channel (the -PLUS variants, RFC 5802 section 6) and so cannot run on
// a plain connection whatever the user allows.
func NeedsTLS(name string) bool {
	return strings.HasSuffix(strings.ToUpper(name), plusSuffix)
}

// checkTransport refuses to start mech off TLS unless the user allowed it.
// Every mechanism refuses, not only those that send the password in clear:
// without TLS an active attacker can strip STARTTLS and offer a weaker
// mechanism, and a passive one gets enough from SCRAM, CRAM-MD5 or NTLM
// for an offline dictionary attack (RFC 5802 section 9).
func checkTransport(mech string, cs ConnState) error {
	if cs.TLS == nil && !cs.AllowPlaintext {
		return &mailsec.Error{Code: mailsec.AuthUnavailable, Op: "AUTH " + mech,
			Detail: "refusing to send credentials for " + mech +
				" without TLS; allow plaintext auth explicitly to override"}
	}
	return nil
}

// needPassword is the Config check shared by the password mechanisms: an
// empty user name or password is a missing setting, and sending it would
// only spend one of the server's failed-login allowances.
func needPassword(mech string, cred Credentials) error {
	if cred.Username == "" || cred.Password == "" {
		return configError(mech, "%s needs a user name and a password", mech)
	}
	return nil
}

// configError reports unusable credentials.
func configError(mech, format string, args ...any) error {
	return mailsec.Errorf(mailsec.Config, "AUTH "+mech, nil, format, args...)
}

// protocolError reports a server challenge the mechanism cannot accept.
func protocolError(mech string, cause error, format string, args ...any) error {
	return mailsec.Errorf(mailsec.Protocol, "AUTH "+mech, cause, format, args...)
}

// unexpectedChallenge is the error of a mechanism whose exchange is over
// but the server sent one more challenge.
func unexpectedChallenge(mech string) error {
	return protocolError(mech, nil, "unexpected %s challenge after the exchange ended", mech)
}

// quote renders untrusted text (a mechanism name, a server message) safe
// for logs: Go quoting escapes control characters such as CR and LF.
func quote(s string) string {
	const max = 200
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strconv.Quote(s)
}
