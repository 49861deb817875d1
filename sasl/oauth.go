package sasl

import (
	"strconv"
	"strings"
)

// ErrorDetailer is implemented by mechanisms whose server explains a
// failure inside the exchange, before its final reply (XOAUTH2 and
// OAUTHBEARER send a JSON status, RFC 7628 section 3.2.2). ErrorDetail
// returns that text, "" when the server sent none, so that the caller can
// show why a token was refused (expired, wrong scope) next to the bare 535.
type ErrorDetailer interface {
	ErrorDetail() string
}

// oauthClient is the shared state of XOAUTH2 and OAUTHBEARER: one initial
// response carrying the token, then at most one error challenge.
type oauthClient struct {
	mech        string
	cred        Credentials
	errorReply  []byte // what Next answers to the error challenge
	errorDetail string
	failed      bool
}

func newXOAuth2Client(cred Credentials) (Client, error) {
	if cred.Username == "" || cred.Token == "" {
		return nil, configError(XOAuth2, "XOAUTH2 needs a user name and a token")
	}
	if err := checkOAuthText(XOAuth2, cred.Username, cred.Token); err != nil {
		return nil, err
	}
	// Google's and Microsoft's XOAUTH2 ask for an empty response to the
	// error challenge, after which they send the final failure.
	return &oauthClient{mech: XOAuth2, cred: cred, errorReply: []byte{}}, nil
}

func newOAuthBearerClient(cred Credentials) (Client, error) {
	if cred.Token == "" {
		return nil, configError(OAuthBearer, "OAUTHBEARER needs a token")
	}
	if err := checkOAuthText(OAuthBearer, cred.Username, cred.Token); err != nil {
		return nil, err
	}
	// RFC 7628 section 3.2.3: the client answers an error challenge with
	// a single %x01 and the server then fails the exchange.
	return &oauthClient{mech: OAuthBearer, cred: cred, errorReply: []byte{0x01}}, nil
}

// checkOAuthText refuses control characters in what goes into the message:
// %x01 separates its fields (RFC 7628 section 3.1), so one inside a user
// name or token could smuggle in a field of the attacker's choosing.
func checkOAuthText(mech string, fields ...string) error {
	for _, f := range fields {
		if strings.ContainsFunc(f, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return configError(mech, "%s user name and token must not contain control characters", mech)
		}
	}
	return nil
}

func (c *oauthClient) Name() string { return c.mech }

// Start sends the token as the initial response: XOAUTH2 as Google
// documents it, OAUTHBEARER as RFC 7628 section 3.1 defines it.
func (c *oauthClient) Start(cs ConnState) ([]byte, error) {
	if err := checkTransport(c.mech, cs); err != nil {
		return nil, err
	}
	if c.mech == XOAuth2 {
		return []byte("user=" + c.cred.Username + "\x01auth=Bearer " + c.cred.Token + "\x01\x01"), nil
	}
	if err := checkOAuthText(c.mech, cs.Host); err != nil {
		return nil, err
	}
	var b strings.Builder
	// gs2-header without channel binding; the authzid is the user, in
	// the saslname encoding of RFC 5801 section 4.
	b.WriteString("n,")
	if c.cred.Username != "" {
		b.WriteString("a=" + encodeSASLName(c.cred.Username))
	}
	b.WriteString(",\x01")
	if cs.Host != "" {
		b.WriteString("host=" + cs.Host + "\x01")
	}
	if cs.Port > 0 {
		b.WriteString("port=" + strconv.Itoa(cs.Port) + "\x01")
	}
	b.WriteString("auth=Bearer " + c.cred.Token + "\x01\x01")
	return []byte(b.String()), nil
}

// encodeSASLName escapes ',' and '=' as RFC 5801 section 4 (and RFC 5802
// section 5.1) require inside a gs2 header.
func encodeSASLName(s string) string {
	return strings.NewReplacer("=", "=3D", ",", "=2C").Replace(s)
}

// Next handles the only challenge these mechanisms know: the server's JSON
// error status. It is kept for ErrorDetail and answered as the mechanism
// wants, so that the server can end the exchange with its failure reply.
func (c *oauthClient) Next(challenge []byte) ([]byte, error) {
	if c.failed {
		return nil, unexpectedChallenge(c.mech)
	}
	c.failed = true
	c.errorDetail = string(challenge)
	return c.errorReply, nil
}

// ErrorDetail returns the server's JSON error status, "" if none came.
func (c *oauthClient) ErrorDetail() string { return c.errorDetail }
