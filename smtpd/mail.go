package smtpd

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mailsec/mailsec/dsn"
)

// mail handles MAIL FROM (RFC 5321 section 4.1.1.2).
func (ss *session) mail(cmd command) *reply {
	switch {
	case ss.helo == "":
		return errNeedHelo
	case ss.policy == TLSRequire && ss.tls == nil:
		return errNeedTLS // Domino's "require"; RFC 3207 section 4
	case ss.kind != MX && ss.authUser == "":
		return errNeedAuth // RFC 6409 section 4.3, RFC 4954 section 6
	case ss.tx != nil:
		return rep(503, "5.5.1", "Nested MAIL command")
	}
	p, ok := parsePathArg(cmd.arg, "FROM:")
	if !ok {
		return rep(501, "5.5.4", "Syntax: MAIL FROM:<address> [parameters]")
	}
	if !utf8.ValidString(p.addr) {
		return rep(553, "5.1.7", "Invalid UTF-8 in sender address")
	}
	tx := &transaction{env: Envelope{From: p.addr}, boxes: map[string]bool{}}
	if r := ss.mailParams(tx, p.params); r != nil {
		return r
	}
	if !isASCII(p.addr) && !tx.env.UTF8 {
		return rep(553, "5.6.7", "Non-ASCII sender address requires SMTPUTF8") // RFC 6531 section 3.5
	}
	if c, ok := ss.srv.Backend.(SenderChecker); ok {
		if err := c.CheckSender(ss.ctx, ss.info(), p.addr); err != nil {
			return ss.refused("sender check failed", err, errCheckFailed)
		}
	}
	ss.tx = tx
	return okSender
}

// mailParams applies the ESMTP parameters of MAIL FROM.
func (ss *session) mailParams(tx *transaction, params []param) *reply {
	seen := map[string]bool{}
	for _, pm := range params {
		if !ss.esmtp {
			return rep(555, "5.5.4", "Parameters need EHLO")
		}
		if seen[pm.key] {
			return errParamSyntax
		}
		seen[pm.key] = true
		switch pm.key {
		case "SIZE": // RFC 1870 section 6
			if !isDigits(pm.value) || len(pm.value) > 20 { // size-value = 1*20DIGIT
				return errParamSyntax
			}
			// A value beyond 64 bits is valid syntax and simply too big.
			if n, err := strconv.ParseInt(pm.value, 10, 64); err != nil || n > ss.srv.Limits.MaxMessageSize {
				return errTooBig
			}
		case "BODY": // RFC 6152; BINARYMIME (RFC 3030) is not offered
			v := strings.ToUpper(pm.value)
			if v != "7BIT" && v != "8BITMIME" {
				return rep(555, "5.5.4", "Unsupported BODY type")
			}
			tx.env.Body = v
		case "SMTPUTF8": // RFC 6531 section 3.4
			if pm.hasValue {
				return errParamSyntax
			}
			tx.env.UTF8 = true
		case "RET": // RFC 3461 section 4.3
			v := strings.ToUpper(pm.value)
			if v != "FULL" && v != "HDRS" {
				return errParamSyntax
			}
			tx.env.Ret = v
		case "ENVID": // RFC 3461 section 4.4
			if len(pm.value) > 100 || !dsn.IsXtext(pm.value) {
				return errParamSyntax
			}
			tx.env.EnvID = pm.value
		case "REQUIRETLS": // RFC 8689 section 2
			if pm.hasValue {
				return errParamSyntax
			}
			if ss.tls == nil {
				// Section 4.1: only on a session under TLS; the keyword is
				// not even offered before.
				return rep(530, "5.7.10", "REQUIRETLS needs TLS")
			}
			tx.env.RequireTLS = true
		case "AUTH": // RFC 4954 section 5: accepted, not trusted
		default:
			return rep(555, "5.5.4", "Unsupported parameter "+pm.key)
		}
	}
	return nil
}

// rcpt handles RCPT TO (RFC 5321 section 4.1.1.3).
func (ss *session) rcpt(cmd command) *reply {
	tx := ss.tx
	switch {
	case tx == nil:
		return errNeedMail
	case tx.bdat != nil:
		return errBadSequence
	case len(tx.env.To) >= ss.srv.Limits.MaxRecipients:
		return rep(452, "4.5.3", "Too many recipients") // RFC 5321 section 4.5.3.1.10
	}
	p, ok := parsePathArg(cmd.arg, "TO:")
	if !ok || p.addr == "" {
		return rep(501, "5.1.3", "Syntax: RCPT TO:<address> [parameters]")
	}
	if !utf8.ValidString(p.addr) {
		return rep(553, "5.1.3", "Invalid UTF-8 in recipient address")
	}
	if !isASCII(p.addr) && !tx.env.UTF8 {
		return rep(553, "5.6.7", "Non-ASCII recipient address requires SMTPUTF8") // RFC 6531 section 3.5
	}
	rc := Rcpt{Addr: p.addr}
	if r := ss.rcptParams(p.params, &rc); r != nil {
		return r
	}
	if p.domain != "" && ss.srv.isLocal(p.domain) {
		box := strings.ToLower(p.local)
		if strings.HasPrefix(box, "\"") || ss.srv.Users == nil || !ss.srv.Users.Exists(box) {
			return rep(550, "5.1.1", "User unknown")
		}
		rc.Mailbox = box
	}
	if r := ss.checkRecipient(&rc, p.domain); r != nil {
		return r
	}
	tx.env.To = append(tx.env.To, p.addr)
	tx.env.Rcpts = append(tx.env.Rcpts, rc)
	if box := rc.Mailbox; box != "" && !tx.boxes[box] { // one copy per mailbox however often it is named
		tx.boxes[box] = true
		tx.env.Mailboxes = append(tx.env.Mailboxes, box)
	}
	return okRecipient
}

// checkRecipient asks the Backend's RecipientChecker about rc, whose
// domain is given; without one only local mailboxes are taken (RFC 5321
// section 7.1: never an open relay).
func (ss *session) checkRecipient(rc *Rcpt, domain string) *reply {
	c, ok := ss.srv.Backend.(RecipientChecker)
	switch {
	case !ok && rc.Mailbox == "":
		return replyFor(ErrRelayDenied, nil)
	case ok:
		if err := c.CheckRecipient(ss.ctx, ss.info(), rc); err != nil {
			return ss.refused("recipient check failed", err, errCheckFailed)
		}
	}
	if rc.Mailbox == "" && strings.HasPrefix(domain, "[") {
		// An address literal would let a submitter aim the relay at any
		// address, the relay's own network included.
		return rep(553, "5.1.2", "Address literals are not relayed")
	}
	return nil
}

// refused returns the reply of a check's error, or, when it carries none
// (the check itself failed: a database down), logs the error and returns
// fallback.
func (ss *session) refused(what string, err error, fallback *reply) *reply {
	if r := replyFor(err, nil); r != nil {
		return r
	}
	ss.log.Error(what, "err", err)
	return fallback
}

// rcptParams checks the ESMTP parameters of RCPT TO, only DSN's (RFC 3461
// section 4.1, 4.2), and records them in rc.
func (ss *session) rcptParams(params []param, rc *Rcpt) *reply {
	seen := map[string]bool{}
	for _, pm := range params {
		if !ss.esmtp {
			return rep(555, "5.5.4", "Parameters need EHLO")
		}
		if seen[pm.key] {
			return errParamSyntax
		}
		seen[pm.key] = true
		switch pm.key {
		case "NOTIFY":
			if !validNotify(strings.ToUpper(pm.value)) {
				return errParamSyntax
			}
			rc.Notify = strings.ToUpper(pm.value)
		case "ORCPT":
			if t, _, ok := strings.Cut(pm.value, ";"); !ok || t == "" || !dsn.IsXtext(pm.value) {
				return errParamSyntax
			}
			rc.ORcpt = pm.value
		default:
			return rep(555, "5.5.4", "Unsupported parameter "+pm.key)
		}
	}
	return nil
}

// validNotify checks "NEVER" or a list of SUCCESS, FAILURE, DELAY.
func validNotify(v string) bool {
	if v == "NEVER" {
		return true
	}
	for _, f := range strings.Split(v, ",") {
		if f != "SUCCESS" && f != "FAILURE" && f != "DELAY" {
			return false
		}
	}
	return true
}

// isLocal reports whether domain is one of the local domains.
func (s *Server) isLocal(domain string) bool {
	for _, d := range s.Domains {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}
