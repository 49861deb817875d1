package mailsec

import "log/slog"

// Facility says which part of the library a log record comes from; it is
// the "facility" attribute of every record, after CSMail/SSL's LogHandler
// facilities (docs/requirements.md) LOG_F_PROTOCOL, LOG_F_SSL, LOG_F_PROXY and LOG_F_USER.
type Facility string

// The facilities.
const (
	FacilityProtocol Facility = "protocol" // SMTP/POP3 commands and replies
	FacilityTLS      Facility = "tls"      // handshakes, certificates
	FacilityProxy    Facility = "proxy"    // proxy negotiation
	FacilityUser     Facility = "user"     // messages meant for the end user
)

// Seed 002's LogHandler levels map onto slog levels: LOG_S_FATAL is
// slog.LevelError, LOG_S_WARNING slog.LevelWarn and LOG_S_INFORMATION
// slog.LevelInfo. The protocol transcript is logged at LevelTrace, below
// Debug, so that turning on debug logging does not by itself record traffic.
const LevelTrace = slog.LevelDebug - 4

// Logger returns l, or a logger that discards everything when l is nil, with
// the facility attribute set.
func Logger(l *slog.Logger, f Facility) *slog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return l.With("facility", string(f))
}
