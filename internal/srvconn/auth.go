package srvconn

import (
	"errors"
	"time"

	"github.com/mailsec/mailsec/sasl"
)

// Exchange runs srv, a SASL mechanism's server side, from the client's
// initial response resp (nil for none) to its verdict, the way RFC 4954
// section 4 and RFC 5034 section 4 run AUTH: each challenge is sent with
// challenge and answered by one line, read as command lines are (ReadLine:
// only CRLF ends it, at most MaxLine octets) and decoded by decode, which
// may refuse it (a cancel "*", bad base64). Additional data with success
// (SCRAM's server-final message) goes out as a challenge too, answered by
// an empty line.
//
// It returns the reply that ended the exchange early (decode's, tooLong
// for a line over MaxLine, the Replies to a bare CR or LF, or the loop's
// own last word after a failed read: to a shutdown, a timeout or a lost
// connection), or else nil and the verdict: srv's error, nil for success.
func (c *Conn) Exchange(srv sasl.Server, resp []byte, challenge func([]byte), decode func(string) ([]byte, Reply), tooLong Reply) (Reply, error) {
	for {
		chal, done, err := srv.Next(resp)
		if err != nil {
			return nil, err
		}
		if done && len(chal) == 0 {
			return nil, nil
		}
		challenge(chal)
		line, err := c.ReadLine()
		switch {
		case errors.Is(err, ErrLineTooLong):
			return tooLong, nil
		case errors.Is(err, ErrBareCRLF):
			return c.srv.Replies.BareLine, nil
		case err != nil:
			if r := c.lost(err); r != nil {
				return r, nil
			}
			return c.srv.Replies.Lost, nil
		}
		var r Reply
		if resp, r = decode(string(line)); r != nil {
			return r, nil
		}
		if done {
			return nil, nil
		}
	}
}

// LoginFailed logs a failed login with mechanism and err, counts it and
// sleeps before the refusal: base (Backoff) doubled with each failure of
// the session or, if more, of the client's address within FailureWindow,
// so that a guesser gains nothing from parallel sessions or reconnecting.
// It returns the session's count of failures, which survives STARTTLS and
// STLS: it is about the client, not the channel.
func (c *Conn) LoginFailed(mechanism string, err error, base time.Duration) int {
	c.loginFails++
	c.Log.Warn("authentication failed", "mechanism", mechanism, "err", err, "failures", c.loginFails)
	time.Sleep(Backoff(base, max(c.loginFails, c.srv.Fails.Add(c.IP))))
	return c.loginFails
}
