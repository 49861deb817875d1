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
	// MaxAuthFailures is the number of failed logins after which the
	// session is closed. 0 means 3.
	MaxAuthFailures int
	// AuthFailureDelay is the pause before the reply to the first failed
	// login; it doubles with every further failure from the same client
	// address within srvconn.FailureWindow, whatever the session (at most
	// 32 times it), to slow down password guessing. 0 means 1 second;
	// negative means none.
	AuthFailureDelay time.Duration
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.MaxSessions, 1000)
	def(&l.MaxPerIP, 20)
	def(&l.MaxAuthFailures, 3)
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 10 * time.Minute
	}
	switch {
	case l.AuthFailureDelay == 0:
		l.AuthFailureDelay = time.Second
	case l.AuthFailureDelay < 0:
		l.AuthFailureDelay = 0
	}
	return l
}

// authDelay is the back-off before answering the n-th failed login (n >= 1).
func (l Limits) authDelay(n int) time.Duration { return srvconn.Backoff(l.AuthFailureDelay, n) }
