package server

import (
	"context"
	"strings"

	"github.com/mailsec/mailsec/smtpd"
	"github.com/mailsec/mailsec/userdb"
)

// SubmissionConfig is the [submission] section: who an authenticated
// user of the submission and smtps listeners may send as.
type SubmissionConfig struct {
	// SenderLoginMismatch is what becomes of mail an authenticated user
	// sends as an address that is not theirs, like Postfix's
	// reject_sender_login_mismatch: "refuse" (the default, "" too)
	// answers MAIL FROM with 553 5.7.1 and a From header with 550 5.7.1;
	// "allow" lets every user send as anyone, for a server whose
	// submitters are all trusted.
	SenderLoginMismatch string `toml:"sender_login_mismatch"`
	// Aliases are, per user, the addresses they may send as besides
	// user@<each local domain>: "name@domain", or "@domain" for every
	// address of the domain.
	Aliases map[string][]string `toml:"aliases"`
}

func (sc *SubmissionConfig) check() error {
	switch sc.SenderLoginMismatch {
	case "":
		sc.SenderLoginMismatch = "refuse"
	case "refuse", "allow":
	default:
		return configErr("submission.sender_login_mismatch", nil, "must be refuse or allow, not %q", sc.SenderLoginMismatch)
	}
	for user, addrs := range sc.Aliases {
		if _, err := userdb.CanonicalName(user); err != nil {
			return configErr("submission.aliases", err, "%q is not a user name", user)
		}
		for _, a := range addrs {
			at := strings.LastIndexByte(a, '@')
			if at < 0 || at == len(a)-1 || strings.ContainsAny(a, " \t\r\n<>\x00") {
				return configErr("submission.aliases", nil, "%s: %q is not an address or @domain", user, a)
			}
		}
	}
	return nil
}

// senderRule says which addresses are a submitter's own: user@<each
// local domain> and the user's aliases. Addresses are compared without
// regard to case, as mailboxes are found. It checks authenticated users
// only: clients that did not log in (MX, relay.trusted_networks) have no
// login to match.
type senderRule struct {
	domains []string
	aliases map[string]map[string]bool // user -> lower-case address or @domain
}

func newSenderRule(c *Config) *senderRule {
	r := &senderRule{domains: c.Domains, aliases: map[string]map[string]bool{}}
	for user, addrs := range c.Submission.Aliases {
		set := map[string]bool{}
		for _, a := range addrs {
			set[strings.ToLower(a)] = true
		}
		r.aliases[strings.ToLower(user)] = set
	}
	return r
}

// owns reports whether user may send as addr.
func (r *senderRule) owns(user, addr string) bool {
	user, addr = strings.ToLower(user), strings.ToLower(addr)
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return false
	}
	if addr[:at] == user {
		for _, d := range r.domains {
			if strings.EqualFold(d, addr[at+1:]) {
				return true
			}
		}
	}
	return r.aliases[user][addr] || r.aliases[user][addr[at:]]
}

// CheckSender implements smtpd.SenderChecker. The null sender is allowed:
// it is the one RFC 8098 section 2.1 requires of read receipts (and RFC
// 3461 of delivery reports) that mail programs submit, and its From header
// is checked all the same.
func (r *senderRule) CheckSender(_ context.Context, s smtpd.SessionInfo, from string) error {
	if s.AuthUser == "" || from == "" || r.owns(s.AuthUser, from) {
		return nil
	}
	return &smtpd.Error{Code: 553, Enhanced: "5.7.1",
		Message: "<" + from + ">: Sender address rejected: not owned by user " + s.AuthUser}
}

// CheckFrom implements smtpd.FromChecker: every author address in the
// From header must be the user's own too, or the envelope check would be
// worth little (the From header is what the recipient reads).
func (r *senderRule) CheckFrom(_ context.Context, s smtpd.SessionInfo, _ *smtpd.Envelope, from []string) error {
	if s.AuthUser == "" {
		return nil
	}
	for _, a := range from {
		if !r.owns(s.AuthUser, a) {
			return &smtpd.Error{Code: 550, Enhanced: "5.7.1",
				Message: "<" + a + ">: From header address rejected: not owned by user " + s.AuthUser}
		}
	}
	return nil
}

// checkedBackend is the backend with the sender rule, which mailsec serve
// uses unless submission.sender_login_mismatch is "allow".
type checkedBackend struct {
	*backend
	*senderRule
}
