package sasl

import (
	"bytes"
	"crypto/tls"
	"errors"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec"
	"github.com/xdg-go/scram"
)

// maxIterations bounds the PBKDF2 work a server can ask of the client: a
// hostile server could otherwise pin a CPU for minutes with i=2000000000.
// Real deployments use 4096 to a few hundred thousand.
const maxIterations = 1 << 22

// scramClient is SCRAM-SHA-1 and SCRAM-SHA-256 (RFC 5802, RFC 7677) and
// their -PLUS variants, which bind the exchange to the TLS channel so that
// a man in the middle holding a certificate the user trusted still cannot
// relay it (RFC 5802 section 6).
type scramClient struct {
	mech   string
	plus   bool
	client *scram.Client
	conv   *scram.ClientConversation
	step   int
	// nonce replaces the random client nonce when set: the hook the
	// tests use to replay the RFC examples.
	nonce string
}

func newSCRAMClient(mech string, cred Credentials) (Client, error) {
	if err := needPassword(mech, cred); err != nil {
		return nil, err
	}
	hash := scram.SHA256
	if mech == SCRAMSHA1 || mech == SCRAMSHA1Plus {
		hash = scram.SHA1
	}
	// NewClient applies SASLprep (RFC 5802 section 5.1, RFC 4013) to the
	// names and the password; a password it rejects cannot be used here.
	c, err := hash.NewClient(cred.Username, cred.Password, cred.Authzid)
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "AUTH "+mech, err, "credentials unusable for %s", mech)
	}
	return &scramClient{mech: mech, plus: strings.HasSuffix(mech, plusSuffix), client: c}, nil
}

func (c *scramClient) Name() string { return c.mech }

// Start returns the client-first-message. A -PLUS client binds to the TLS
// channel and refuses without one; the others send gs2 flag "n" rather
// than "y" (RFC 5802 section 6) because a Client does not see the server's
// mechanism list, and "y" would fail a user's deliberate choice of plain
// SCRAM on a server that also offers -PLUS. Strongest picks -PLUS whenever
// the server offers it, which is where the downgrade protection comes from.
func (c *scramClient) Start(cs ConnState) ([]byte, error) {
	if c.nonce != "" {
		nonce := c.nonce
		c.client.WithNonceGenerator(func() string { return nonce })
	}
	if c.plus {
		if cs.TLS == nil {
			return nil, &mailsec.Error{Code: mailsec.AuthUnavailable, Op: "AUTH " + c.mech,
				Detail: c.mech + " binds to the TLS channel and cannot run without TLS"}
		}
		cb, err := channelBinding(cs.TLS)
		if err != nil {
			return nil, mailsec.Errorf(mailsec.AuthUnavailable, "AUTH "+c.mech, err,
				"no channel binding available for %s", c.mech)
		}
		c.conv = c.client.NewConversationWithChannelBinding(cb)
	} else {
		if err := checkTransport(c.mech, cs); err != nil {
			return nil, err
		}
		c.conv = c.client.NewConversation()
	}
	first, err := c.conv.Step("")
	if err != nil {
		return nil, mailsec.Errorf(mailsec.Config, "AUTH "+c.mech, err, "cannot build the %s client-first-message", c.mech)
	}
	return []byte(first), nil
}

// channelBinding picks the binding the connection offers: tls-exporter
// (RFC 9266 section 2) under TLS 1.3, where tls-unique is undefined, and
// tls-unique (RFC 5929 section 3) under TLS 1.2, where Go leaves it empty
// for resumptions without extended master secret that it cannot make safe.
func channelBinding(state *tls.ConnectionState) (scram.ChannelBinding, error) {
	switch {
	case !state.HandshakeComplete:
		return scram.ChannelBinding{}, errors.New("the TLS handshake is not complete")
	case state.Version >= tls.VersionTLS13:
		return scram.NewTLSExporterBinding(state)
	case len(state.TLSUnique) > 0:
		return scram.NewTLSUniqueBinding(state.TLSUnique), nil
	default:
		return scram.ChannelBinding{}, errors.New("the TLS 1.2 session has no tls-unique value")
	}
}

// Next answers the server-first-message with the client proof, then checks
// the server-final-message (RFC 5802 section 3): a server that cannot
// prove knowledge of the password is an impostor, whatever it replies
// next. The empty response to the server-final-message is what SMTP AUTH
// expects before its final reply (RFC 4954 section 4).
func (c *scramClient) Next(challenge []byte) ([]byte, error) {
	if c.conv == nil {
		return nil, protocolError(c.mech, nil, "%s challenge before the exchange started", c.mech)
	}
	c.step++
	switch c.step {
	case 1:
		if err := checkIterations(challenge); err != nil {
			return nil, protocolError(c.mech, err, "unacceptable %s server-first-message", c.mech)
		}
		final, err := c.conv.Step(string(challenge))
		if err != nil {
			return nil, protocolError(c.mech, err, "unacceptable %s server-first-message", c.mech)
		}
		return []byte(final), nil
	case 2:
		if _, err := c.conv.Step(string(challenge)); err != nil {
			if bytes.HasPrefix(challenge, []byte("e=")) {
				// server-error (RFC 5802 section 7): the server refused
				// us, typically e=invalid-proof for a wrong password.
				return nil, protocolError(c.mech, nil, "the server rejected the %s exchange: %s", c.mech, quote(string(challenge[2:])))
			}
			return nil, protocolError(c.mech, err, "the server failed %s verification", c.mech)
		}
		return []byte{}, nil
	default:
		return nil, unexpectedChallenge(c.mech)
	}
}

// checkIterations enforces maxIterations on the server-first-message's
// i= attribute (RFC 5802 section 5.1); the library enforces the minimum.
func checkIterations(serverFirst []byte) error {
	for attr := range bytes.SplitSeq(serverFirst, []byte(",")) {
		if v, ok := bytes.CutPrefix(attr, []byte("i=")); ok {
			n, err := strconv.Atoi(string(v))
			if err != nil || n > maxIterations {
				return errors.New("iteration count " + quote(string(v)) + " out of range")
			}
		}
	}
	return nil
}

// Verify fails unless the server sent a server-final-message whose
// signature proved it holds the user's credentials. A server that reports
// success without one may be an impostor that never knew the password.
func (c *scramClient) Verify() error {
	if c.conv == nil || !c.conv.Valid() {
		return protocolError(c.mech, nil, "the server did not prove it knows the %s credentials", c.mech)
	}
	return nil
}
