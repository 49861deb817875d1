package pop3d

import (
	"time"

	"github.com/mailsec/mailsec/internal/srvconn"
)

// Limits bound the resources one client can take, in the style of
// smtpd.Limits. Every zero field means its documented default.
type Limits struct {
	// MaxSessions is the number of concurrent sessions over all POP3
	// listeners; beyond it a connection gets "-ERR [SYS/TEMP]" and is
	// closed. 0 means 1000.
	MaxSessions int
	// MaxPerIP is the number of concurrent sessions from one IP address.
	// 0 means 20.
	MaxPerIP int
	// IdleTimeout is how long a client has to send one complete command
	// line; like smtpd's CommandTimeout it covers the whole line, so a
	// client trickling one byte a second is cut off too. RFC 1939 section
	// 3 asks for an inactivity autologout timer of at least 10 minutes.
	// 0 means 10 minutes.
	IdleTimeout time.Duration
	// MaxAuthFailures is the number of failed logins, USER/PASS or AUTH,
	// after which the session ends with "-ERR [AUTH]". 0 means 3.
	MaxAuthFailures int
	// AuthFailureDelay slows down password guessing as smtpd's does: the
	// first failed login waits this long before its -ERR, and each further
	// one from the client's address (its /64 for IPv6) within 15 minutes
	// twice as long as the one before, in any session, up to 32 times it.
	// 0 means 1 second; negative means no pause.
	AuthFailureDelay time.Duration
}

func (l Limits) withDefaults() Limits {
	srvconn.Default(&l.MaxSessions, 1000)
	srvconn.Default(&l.MaxPerIP, 20)
	srvconn.Default(&l.MaxAuthFailures, 3)
	srvconn.Default(&l.IdleTimeout, 10*time.Minute)
	l.AuthFailureDelay = srvconn.LoginDelay(l.AuthFailureDelay)
	return l
}
