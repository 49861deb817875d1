package smtpd

import (
	"encoding/base64"
	"strings"

	"github.com/mailsec/mailsec/internal/srvconn"
	"github.com/mailsec/mailsec/sasl"
)

// mechanisms are the SASL mechanisms offered in EHLO.
func mechanisms() []string { return sasl.ServerMechanisms() }

// auth handles AUTH (RFC 4954).
func (ss *session) auth(cmd command) *reply {
	switch {
	case ss.tls == nil:
		// Seed 004 and RFC 4954 section 4: no credentials over plaintext.
		return errAuthNeedsTLS
	case ss.srv.Users == nil:
		return rep(502, "5.5.1", "AUTH not available")
	case !ss.esmtp:
		return errNeedHelo
	case ss.authUser != "":
		return rep(503, "5.5.1", "Already authenticated") // RFC 4954 section 4
	case ss.tx != nil:
		return rep(503, "5.5.1", "AUTH not allowed during a mail transaction")
	}
	mech, ir, hasIR := strings.Cut(cmd.arg, " ")
	mech = strings.ToUpper(mech)
	srv, err := sasl.NewServer(mech, ss.srv.Users, sasl.ConnState{TLS: ss.tls})
	if err != nil {
		return rep(504, "5.5.4", "Unrecognized authentication type")
	}
	var resp []byte // nil: no initial response
	if hasIR {
		var r *reply
		if resp, r = decodeResponse(ir); r != nil {
			return r
		}
	}
	r, err := ss.c.Exchange(srv, resp, ss.challenge, decodeSASL, errAuthLineTooLong)
	ss.sync()
	switch {
	case r != nil:
		return r.(*reply)
	case err != nil:
		return ss.authFailed(mech, err)
	}
	return ss.authenticated(srv.Identity(), mech)
}

// challenge sends a SASL challenge as a 334 reply (RFC 4954 section 4).
func (ss *session) challenge(chal []byte) {
	ss.send(rep(334, "", base64.StdEncoding.EncodeToString(chal)))
}

// decodeSASL is decodeResponse for srvconn.Conn.Exchange.
func decodeSASL(s string) ([]byte, srvconn.Reply) {
	b, r := decodeResponse(s)
	if r != nil {
		return nil, r // a nil *reply would make a non-nil srvconn.Reply
	}
	return b, nil
}

// decodeResponse decodes a client's base64 SASL response: "=" is the empty
// response and "*" cancels (RFC 4954 section 4).
func decodeResponse(s string) ([]byte, *reply) {
	switch s {
	case "*":
		return nil, rep(501, "5.0.0", "Authentication cancelled")
	case "=":
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, rep(501, "5.5.2", "Invalid base64 in authentication exchange")
	}
	return b, nil
}

// authenticated records a successful login.
func (ss *session) authenticated(user, mech string) *reply {
	ss.authUser = user
	ss.log.Info("authenticated", "user", user, "mechanism", mech)
	ss.observeAuth(mech, true)
	return rep(235, "2.7.0", "Authentication successful")
}

// authFailed slows down and eventually disconnects a client guessing
// passwords (srvconn.Conn.LoginFailed): each failure from its address
// waits longer before the 535, and after MaxAuthFailures in the session it
// ends with 421.
func (ss *session) authFailed(mech string, err error) *reply {
	ss.observeAuth(mech, false)
	if ss.c.LoginFailed(mech, err, ss.srv.Limits.AuthFailureDelay) >= ss.srv.Limits.MaxAuthFailures {
		return &reply{code: 421, enh: "4.7.0", text: "Too many failed authentication attempts, closing", close: true}
	}
	return rep(535, "5.7.8", "Authentication credentials invalid")
}
