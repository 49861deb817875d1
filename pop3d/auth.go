package pop3d

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"

	"github.com/mailsec/mailsec/internal/srvconn"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/store"
)

// mechanisms are the SASL mechanisms offered in CAPA.
func mechanisms() []string { return sasl.ServerMechanisms() }

// userCmd handles USER (RFC 1939 section 7). The answer is +OK whether or
// not the user exists, so that names cannot be probed.
func (ss *session) userCmd(cmd command) *reply {
	switch {
	case ss.tls == nil:
		return errNeedTLS // no credentials over plaintext (RFC 2595 section 2.2)
	case len(cmd.args) != 1:
		return errSyntax
	}
	ss.user = cmd.args[0]
	return okReply("send PASS")
}

// pass handles PASS (RFC 1939 section 7), valid right after USER.
func (ss *session) pass(cmd command) *reply {
	switch {
	case ss.tls == nil:
		return errNeedTLS
	case ss.user == "":
		return errReply("", "USER first")
	case cmd.rest == "":
		return errSyntax
	}
	user := ss.user
	ss.user = ""
	if !ss.srv.Users.CheckPassword(user, cmd.rest) {
		return ss.authFailed("USER", errors.New("wrong user name or password"))
	}
	return ss.login(user, "USER")
}

// auth handles AUTH (RFC 5034) with the server side of package sasl.
func (ss *session) auth(cmd command) *reply {
	switch {
	case ss.tls == nil:
		// Seed 004: not advertised and refused before TLS.
		return errNeedTLS
	case len(cmd.args) < 1 || len(cmd.args) > 2:
		return errSyntax
	}
	mech := strings.ToUpper(cmd.args[0])
	srv, err := sasl.NewServer(mech, ss.srv.Users, sasl.ConnState{TLS: ss.tls})
	if err != nil {
		return errReply("", "Unsupported authentication mechanism")
	}
	var resp []byte // nil: no initial response
	if len(cmd.args) == 2 {
		var r *reply
		// RFC 5034 section 4: "=" is an empty initial response.
		if resp, r = decodeResponse(cmd.args[1], true); r != nil {
			return r
		}
	}
	r, err := ss.c.Exchange(srv, resp, ss.challenge, decodeSASL, errAuthLineTooLong)
	switch {
	case r != nil:
		return r.(*reply)
	case err != nil:
		return ss.authFailed(mech, err)
	}
	return ss.login(srv.Identity(), mech)
}

// challenge sends a SASL challenge as a continuation (RFC 5034 section 4).
func (ss *session) challenge(chal []byte) {
	ss.c.W.WriteString("+ " + base64.StdEncoding.EncodeToString(chal) + "\r\n")
}

// decodeSASL decodes a response line for srvconn.Conn.Exchange.
func decodeSASL(s string) ([]byte, srvconn.Reply) {
	b, r := decodeResponse(s, false)
	if r != nil {
		return nil, r // a nil *reply would make a non-nil srvconn.Reply
	}
	return b, nil
}

// decodeResponse decodes a client's base64 SASL response; "*" cancels
// (RFC 5034 section 4). An empty continuation line is the empty response;
// as an initial response that is written "=".
func decodeResponse(s string, initial bool) ([]byte, *reply) {
	switch {
	case s == "*":
		return nil, errReply("", "Authentication cancelled")
	case initial && s == "=", !initial && s == "":
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, errReply("", "Invalid base64 in authentication exchange")
	}
	return b, nil
}

// login moves an authenticated user into the TRANSACTION state by locking
// and listing the maildrop (RFC 1939 section 4).
func (ss *session) login(identity, mech string) *reply {
	user := strings.ToLower(identity)
	box, err := openMaildrop(ss.srv.Store, user)
	if errors.Is(err, store.ErrLocked) {
		ss.c.Log.Info("maildrop in use", "user", user)
		// RFC 2449 section 8.1.2: the credentials were fine, the maildrop
		// is busy; the client may retry later.
		return errReply("IN-USE", "Maildrop is locked by another session")
	}
	if err != nil {
		ss.c.Log.Error("cannot open maildrop", "user", user, "err", err)
		// RFC 3206 section 5: a temporary server problem.
		return errReply("SYS/TEMP", "Cannot open the maildrop, try again later")
	}
	ss.box, ss.authUser = box, user
	ss.c.Log.Info("authenticated", "user", user, "mechanism", mech)
	if o := ss.srv.Observer; o != nil {
		o.Auth(ss.info(), mech, true)
	}
	n, size := box.stat()
	return okReply("Logged in, " + strconv.Itoa(n) + " messages (" + strconv.FormatInt(size, 10) + " octets)")
}

// authFailed slows down and eventually disconnects a client guessing
// passwords, like smtpd (srvconn.Conn.LoginFailed): each failure waits
// longer before the -ERR, and after MaxAuthFailures the session ends.
func (ss *session) authFailed(mech string, err error) *reply {
	if o := ss.srv.Observer; o != nil {
		o.Auth(ss.info(), mech, false)
	}
	if ss.c.LoginFailed(mech, err, ss.srv.Limits.AuthFailureDelay) >= ss.srv.Limits.MaxAuthFailures {
		return closeReply("AUTH", "Too many failed logins, closing")
	}
	// RFC 3206 section 4: [AUTH] says the credentials were the problem.
	return errReply("AUTH", "Authentication failed")
}
