package smtpd

import (
	"time"

	"github.com/mailsec/mailsec/internal/srvconn"
)

// Limits bound the resources one client can take. Every zero field means
// its documented default.
type Limits struct {
	// MaxMessageSize is the largest message accepted, in octets, as
	// advertised by SIZE (RFC 1870). 0 means 50 MiB.
	MaxMessageSize int64
	// MaxRecipients per transaction; RCPT beyond it gets 452 4.5.3 (RFC
	// 5321 section 4.5.3.1.10 requires accepting at least 100). 0 means 100.
	MaxRecipients int
	// MaxSessions is the number of concurrent sessions over all listeners;
	// beyond it a connection gets 421 4.7.0 and is closed. 0 means 1000.
	MaxSessions int
	// MaxPerIP is the number of concurrent sessions from one IP address.
	// 0 means 20.
	MaxPerIP int
	// CommandTimeout is how long a client has to send one complete command
	// line. It is a deadline for the whole line, not an idle timer, so a
	// client trickling a byte a second is cut off too. RFC 5321 section
	// 4.5.3.2.7 asks for at least 5 minutes. 0 means 5 minutes.
	CommandTimeout time.Duration
	// DataTimeout bounds the whole DATA or BDAT transfer of one message;
	// within it each read must also make progress within CommandTimeout.
	// 0 means 30 minutes (a 50 MiB message at 25 kB/s).
	DataTimeout time.Duration
	// MaxAuthFailures is the number of failed AUTH commands after which the
	// session is closed with 421. 0 means 3.
	MaxAuthFailures int
	// AuthFailureDelay is the pause before the reply to the first failed
	// AUTH; it doubles with every further failure from the same client
	// address within srvconn.FailureWindow, whatever the session (at most
	// 32 times it), to slow down password guessing. 0 means 1 second;
	// negative means none.
	AuthFailureDelay time.Duration
}

func (l Limits) withDefaults() Limits {
	srvconn.Default(&l.MaxMessageSize, 50<<20)
	srvconn.Default(&l.MaxRecipients, 100)
	srvconn.Default(&l.MaxSessions, 1000)
	srvconn.Default(&l.MaxPerIP, 20)
	srvconn.Default(&l.MaxAuthFailures, 3)
	srvconn.Default(&l.CommandTimeout, 5*time.Minute)
	srvconn.Default(&l.DataTimeout, 30*time.Minute)
	l.AuthFailureDelay = srvconn.LoginDelay(l.AuthFailureDelay)
	return l
}
