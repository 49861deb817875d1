package sasl

import "strings"

// plainClient is PLAIN (RFC 4616): the password itself goes to the server,
// so it runs only under TLS or with the user's explicit consent.
type plainClient struct {
	cred Credentials
	done bool
}

func newPlainClient(cred Credentials) (Client, error) {
	if err := needPassword(Plain, cred); err != nil {
		return nil, err
	}
	// RFC 4616 section 2: NUL separates the fields, so none may contain
	// one; sending it anyway would let a password forge an authzid.
	if strings.ContainsRune(cred.Authzid+cred.Username+cred.Password, 0) {
		return nil, configError(Plain, "PLAIN credentials must not contain NUL characters")
	}
	return &plainClient{cred: cred}, nil
}

func (c *plainClient) Name() string { return Plain }

// Start returns message = [authzid] NUL authcid NUL passwd (RFC 4616
// section 2) as the initial response, saving a round trip.
func (c *plainClient) Start(cs ConnState) ([]byte, error) {
	if err := checkTransport(Plain, cs); err != nil {
		return nil, err
	}
	return c.message(), nil
}

func (c *plainClient) message() []byte {
	return []byte(c.cred.Authzid + "\x00" + c.cred.Username + "\x00" + c.cred.Password)
}

// Next answers the empty challenge a server sends when the protocol layer
// could not send an initial response (RFC 4616 section 2, RFC 4422 section
// 5); any other challenge is a protocol error since PLAIN has one message.
func (c *plainClient) Next(challenge []byte) ([]byte, error) {
	if len(challenge) != 0 || c.done {
		return nil, unexpectedChallenge(Plain)
	}
	c.done = true
	return c.message(), nil
}
