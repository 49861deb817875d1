package mailsec

import "fmt"

// Channel says how a server's text reached mailsec. Text received outside a
// TLS session with a verified server could have been written by anyone on
// the path (the EAST study's UI-spoofing class: "call +1-555-..." in a 454
// refusing STARTTLS), so wherever mailsec shows it to a person it says so
// on the same line (see Mark).
type Channel uint8

const (
	// ChannelVerified is text received inside a TLS session whose server
	// was authenticated, and the zero value for replies mailsec did not
	// receive from a server at all.
	ChannelVerified Channel = iota
	// ChannelCleartext is text received before TLS, or in a session
	// without it.
	ChannelCleartext
	// ChannelUnverifiedTLS is text received under TLS whose server
	// certificate was not verified (verification turned off), so a man in
	// the middle may have terminated the TLS.
	ChannelUnverifiedTLS
)

var channelNames = map[Channel]string{ChannelVerified: "verified-tls", ChannelCleartext: "cleartext", ChannelUnverifiedTLS: "unverified-tls"}

// String returns the channel's name as used in JSON ("cleartext").
func (c Channel) String() string {
	if n, ok := channelNames[c]; ok {
		return n
	}
	return fmt.Sprintf("Channel(%d)", uint8(c))
}

// Mark is what follows server text of this channel where a person reads
// it: empty for verified TLS.
func (c Channel) Mark() string {
	switch c {
	case ChannelVerified:
		return ""
	case ChannelUnverifiedTLS:
		return "(unverified server text, TLS without verification)"
	}
	return "(unverified server text, received before TLS)"
}

// MarshalText writes the channel's name.
func (c Channel) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// UnmarshalText reads a name written by MarshalText.
func (c *Channel) UnmarshalText(b []byte) error {
	for k, n := range channelNames {
		if n == string(b) {
			*c = k
			return nil
		}
	}
	return fmt.Errorf("mailsec: unknown channel %q", b)
}
