package sasl

import (
	"github.com/Azure/go-ntlmssp"
	"github.com/mailsec/mailsec"
)

// ntlmClient is NTLM as Exchange speaks it in SMTP and POP3 ([MS-SMTPNTLM],
// [MS-POP3]): NEGOTIATE, CHALLENGE, AUTHENTICATE, with NTLMv2 responses
// only. It ranks last: NTLM authenticates neither the server nor the
// channel and its responses can be cracked offline.
type ntlmClient struct {
	user     string // DOMAIN\user when a domain is set
	password string
	step     int
}

func newNTLMClient(cred Credentials) (Client, error) {
	if err := needPassword(NTLM, cred); err != nil {
		return nil, err
	}
	user := cred.Username
	if cred.Domain != "" {
		// go-ntlmssp reads the user's domain from DOMAIN\user.
		user = cred.Domain + `\` + cred.Username
	}
	return &ntlmClient{user: user, password: cred.Password}, nil
}

func (c *ntlmClient) Name() string { return NTLM }

// Start returns the NEGOTIATE message. Its domain and workstation fields
// name the client machine, not the user, so they stay empty.
func (c *ntlmClient) Start(cs ConnState) ([]byte, error) {
	if err := checkTransport(NTLM, cs); err != nil {
		return nil, err
	}
	msg, err := ntlmssp.NewNegotiateMessage("", "")
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "AUTH "+NTLM, err, "cannot build the NTLM NEGOTIATE message")
	}
	return msg, nil
}

// Next answers the server's CHALLENGE message with the AUTHENTICATE
// message; go-ntlmssp refuses challenges that ask for NTLMv1.
func (c *ntlmClient) Next(challenge []byte) ([]byte, error) {
	c.step++
	if c.step > 1 {
		return nil, unexpectedChallenge(NTLM)
	}
	msg, err := ntlmssp.NewAuthenticateMessage(challenge, c.user, c.password, nil)
	if err != nil {
		return nil, protocolError(NTLM, err, "unacceptable NTLM CHALLENGE message")
	}
	return msg, nil
}
