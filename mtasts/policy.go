// Package mtasts implements the sending side of SMTP MTA Strict Transport
// Security, RFC 8461: discovering a recipient domain's policy through the
// _mta-sts TXT record (section 3.1), fetching it over HTTPS (section 3.3),
// parsing it (section 3.2), caching it (sections 5.1 and 10.2) and
// matching MX hosts against it (section 4.1).
//
// MTA-STS protects against an active attacker who strips STARTTLS or
// presents a forged certificate: a domain that published a policy tells
// senders that its MX hosts must offer TLS with a WebPKI-valid
// certificate. Because the discovery itself runs over unauthenticated DNS,
// the protection comes from the cache: a policy fetched once keeps
// applying until its max_age passes, even if an attacker later hides the
// TXT record (section 10.2). Cache is therefore the entry point meant for
// the relay; Fetcher and ParsePolicy are its building blocks.
//
// Applying the policy to a connection (refusing MX hosts that do not
// match, requiring a verified certificate, section 4.2) is left to the
// relay.
package mtasts

import (
	"bytes"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/mailsec/mailsec"
)

// Mode is the "mode" field of a policy (RFC 8461 section 5).
type Mode string

// The modes of section 5.
const (
	// ModeEnforce: senders must not deliver to MX hosts that do not match
	// the policy or do not present a valid certificate.
	ModeEnforce Mode = "enforce"
	// ModeTesting: senders deliver as without a policy but report the
	// failures (RFC 8460).
	ModeTesting Mode = "testing"
	// ModeNone: the domain has withdrawn its policy (section 8.3); senders
	// treat it as having none.
	ModeNone Mode = "none"
)

const (
	// Version is the only policy and TXT record version (sections 3.1 and
	// 3.2).
	Version = "STSv1"
	// MaxMaxAge is the largest max_age section 3.2 allows, about a year.
	MaxMaxAge = 31557600 * time.Second
	// MaxPolicySize is the largest policy body accepted: section 3.3
	// suggests 64 kilobytes as a limit against resource exhaustion.
	MaxPolicySize = 64 << 10
)

// Policy is a parsed MTA-STS policy (RFC 8461 section 3.2).
type Policy struct {
	// Version is always "STSv1".
	Version string
	// Mode is what the domain asks senders to do with failures.
	Mode Mode
	// MX are the allowed MX host patterns, in lower case without trailing
	// dot: host names, or "*." followed by a domain (section 4.1). Empty
	// only when Mode is ModeNone.
	MX []string
	// MaxAge is how long the policy may be cached after Fetched, at most
	// MaxMaxAge.
	MaxAge time.Duration
	// ID is the id of the _mta-sts TXT record the policy was fetched
	// under (section 3.1); ParsePolicy and Fetch leave it empty, Cache
	// fills it in. A change of id is how a domain announces a new policy.
	ID string
	// Fetched is when the policy was fetched; expiry counts from it.
	Fetched time.Time
}

// Expired reports whether the policy's max_age has passed at now: section
// 5.1 applies only a cached policy "whose time-since-fetch has not
// exceeded its max_age".
func (p *Policy) Expired(now time.Time) bool {
	return now.Sub(p.Fetched) > p.MaxAge
}

// Matches reports whether mxHost, an MX host name, is allowed by one of
// the policy's mx patterns (RFC 8461 section 4.1): equal to the pattern,
// or, for a pattern "*.domain", made of exactly one label followed by
// domain. So "*.example.com" matches "mx1.example.com" but neither
// "example.com" nor "a.b.example.com". Names compare without regard to
// ASCII case and to a trailing dot, as DNS names do.
func (p *Policy) Matches(mxHost string) bool {
	host := normalize(mxHost)
	if !validDomain(host) {
		// Patterns are host names (parseMX), so no other string can
		// match; checking keeps a host of "*.example.com" from matching
		// its own pattern as if "*" were a label.
		return false
	}
	for _, pattern := range p.MX {
		pattern = normalize(pattern)
		if suffix, ok := strings.CutPrefix(pattern, "*."); ok {
			// The wildcard stands for the whole leftmost label and only
			// that one: what precedes the suffix must be one non-empty
			// label.
			label, rest, found := strings.Cut(host, ".")
			if found && label != "" && rest == suffix {
				return true
			}
			continue
		}
		if host == pattern {
			return true
		}
	}
	return false
}

func normalize(name string) string {
	return strings.ToLower(strings.TrimSuffix(name, "."))
}

// ParsePolicy parses a policy body (RFC 8461 section 3.2): lines of
// "key: value" ended by LF or CRLF. version must be STSv1 and mode and
// max_age must be present; mx must be present unless the mode is none.
// Unknown keys are ignored, as section 3.2 requires, so that future
// extensions do not break old senders. When a key other than mx repeats,
// the first occurrence counts and the others are ignored, again as section
// 3.2 says; mx is the one key meant to repeat.
//
// Beyond the ABNF, empty lines are tolerated (an editor's final blank
// line should not cost a domain its protection), and a max_age above the
// maximum is lowered to MaxMaxAge rather than refused: refusing would turn
// a domain's request for a long, strict policy into no policy at all. A
// value of more than 10 digits is refused, as the ABNF allows at most 10.
// Everything else that breaks the ABNF makes the policy invalid, notably a
// bare CR, which could otherwise hide a line from one parser but not from
// another.
//
// Errors are *mailsec.Error with code mailsec.Protocol: the text comes
// from the recipient domain's server.
func ParsePolicy(text []byte) (*Policy, error) {
	if len(text) > MaxPolicySize {
		return nil, invalid("the policy is %d bytes, more than the %d accepted", len(text), MaxPolicySize)
	}
	var (
		p    Policy
		seen = map[string]bool{}
	)
	for n, line := range bytes.Split(text, []byte("\n")) {
		line = bytes.TrimSuffix(line, []byte("\r"))
		if bytes.IndexByte(line, '\r') >= 0 {
			return nil, invalid("line %d holds a CR not followed by LF", n+1)
		}
		if len(bytes.Trim(line, " \t")) == 0 {
			continue
		}
		key, value, ok := strings.Cut(string(line), ":")
		if !ok {
			return nil, invalid("line %d is not \"key: value\"", n+1)
		}
		// The ABNF puts no space before the colon, any WSP after it, and
		// allows WSP at the end of the line.
		value = strings.Trim(value, " \t")
		if !validKey(key) {
			return nil, invalid("line %d has an invalid key %q", n+1, key)
		}
		if key == "mx" {
			mx, err := parseMX(value)
			if err != nil {
				return nil, err
			}
			p.MX = append(p.MX, mx)
			continue
		}
		if seen[key] {
			continue
		}
		seen[key] = true
		switch key {
		case "version":
			if value != Version {
				return nil, invalid("version %q is not %s", value, Version)
			}
			p.Version = value
		case "mode":
			// Keywords are case-sensitive (%s in the ABNF).
			switch m := Mode(value); m {
			case ModeEnforce, ModeTesting, ModeNone:
				p.Mode = m
			default:
				return nil, invalid("unknown mode %q", value)
			}
		case "max_age":
			age, err := parseMaxAge(value)
			if err != nil {
				return nil, err
			}
			p.MaxAge = age
		}
	}
	switch {
	case p.Version == "":
		return nil, invalid("the policy has no version")
	case p.Mode == "":
		return nil, invalid("the policy has no mode")
	case !seen["max_age"]:
		return nil, invalid("the policy has no max_age")
	case len(p.MX) == 0 && p.Mode != ModeNone:
		// Without mx patterns no MX host could match, so an enforce
		// policy would block all mail; a none policy needs none.
		return nil, invalid("the %s policy has no mx", p.Mode)
	}
	return &p, nil
}

func parseMaxAge(value string) (time.Duration, error) {
	if value == "" || len(value) > 10 || strings.Trim(value, "0123456789") != "" {
		return 0, invalid("max_age %q is not 1 to 10 digits", value)
	}
	secs, _ := strconv.ParseInt(value, 10, 64) // 10 digits cannot fail
	// Clamp the seconds, not the Duration: 10 digits of seconds overflow
	// a Duration in nanoseconds.
	return time.Duration(min(secs, int64(MaxMaxAge/time.Second))) * time.Second, nil
}

// parseMX checks an mx value: a domain of letter-digit-hyphen labels (RFC
// 5321's Domain), optionally preceded by "*." (section 3.2).
func parseMX(value string) (string, error) {
	name := normalize(value)
	if !validDomain(strings.TrimPrefix(name, "*.")) {
		return "", invalid("mx %q is not a host name or *.domain", value)
	}
	return name, nil
}

// validKey checks the ABNF of policy keys: a letter or digit, then up to
// 31 letters, digits, "_", "-" or ".".
func validKey(key string) bool {
	if key == "" || len(key) > 32 || !alnum(key[0]) {
		return false
	}
	for _, c := range []byte(key[1:]) {
		if !alnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validDomain accepts LDH labels of 1 to 63 bytes that neither start nor
// end with a hyphen, 253 bytes in all (RFC 5321 section 4.1.2, RFC 1035
// section 2.3.4).
func validDomain(name string) bool {
	if name == "" || len(name) > 253 {
		return false
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range []byte(label) {
			if !alnum(c) && c != '-' {
				return false
			}
		}
	}
	return true
}

func alnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

// ErrInvalidPolicy is the cause of the errors that report a policy body
// that breaks RFC 8461 or that the server sent as something else than
// text/plain: TLS reports call that "sts-policy-invalid" (RFC 8460
// section 4.3.2.2). Test with errors.Is.
var ErrInvalidPolicy = errors.New("invalid MTA-STS policy")

func invalid(format string, args ...any) *mailsec.Error {
	return mailsec.Errorf(mailsec.Protocol, "mta-sts", ErrInvalidPolicy, format, args...)
}
