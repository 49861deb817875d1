package sasl

// loginClient is the LOGIN mechanism (draft-murchison-sasl-login): user
// name then password, each in clear, so it runs only under TLS or with the
// user's explicit consent.
type loginClient struct {
	cred Credentials
	step int
}

func newLoginClient(cred Credentials) (Client, error) {
	if err := needPassword(Login, cred); err != nil {
		return nil, err
	}
	return &loginClient{cred: cred}, nil
}

func (c *loginClient) Name() string { return Login }

// Start has no initial response: LOGIN servers prompt for the user name.
func (c *loginClient) Start(cs ConnState) ([]byte, error) {
	if err := checkTransport(Login, cs); err != nil {
		return nil, err
	}
	return nil, nil
}

// Next answers by position, not by the prompt's text: servers word it as
// they like ("Username:", "User Name", Exchange's localised prompts), so
// the first challenge gets the user name and the second the password.
func (c *loginClient) Next(challenge []byte) ([]byte, error) {
	c.step++
	switch c.step {
	case 1:
		return []byte(c.cred.Username), nil
	case 2:
		return []byte(c.cred.Password), nil
	default:
		return nil, unexpectedChallenge(Login)
	}
}
