package sasl

import (
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
)

// cramMD5Client is CRAM-MD5 (RFC 2195). The password does not cross the
// wire, but the server must keep a plaintext-equivalent secret and an
// eavesdropper can attack the response offline, hence its low rank.
type cramMD5Client struct {
	cred Credentials
	done bool
}

func newCRAMMD5Client(cred Credentials) (Client, error) {
	if err := needPassword(CRAMMD5, cred); err != nil {
		return nil, err
	}
	return &cramMD5Client{cred: cred}, nil
}

func (c *cramMD5Client) Name() string { return CRAMMD5 }

// Start has no initial response: the server speaks first with its
// timestamp challenge (RFC 2195 section 2).
func (c *cramMD5Client) Start(cs ConnState) ([]byte, error) {
	if err := checkTransport(CRAMMD5, cs); err != nil {
		return nil, err
	}
	return nil, nil
}

// Next returns user SP hex(HMAC-MD5(password, challenge)) in lower case
// (RFC 2195 section 2). An empty challenge would make the digest a constant
// an eavesdropper could replay, so it is refused.
func (c *cramMD5Client) Next(challenge []byte) ([]byte, error) {
	if c.done {
		return nil, unexpectedChallenge(CRAMMD5)
	}
	c.done = true
	if len(challenge) == 0 {
		return nil, protocolError(CRAMMD5, nil, "empty CRAM-MD5 challenge")
	}
	mac := hmac.New(md5.New, []byte(c.cred.Password))
	mac.Write(challenge)
	return []byte(c.cred.Username + " " + hex.EncodeToString(mac.Sum(nil))), nil
}
