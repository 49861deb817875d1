package smtp

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/security"
)

// A refused character is named so that it reads: a space as ' ', a
// control character escaped, never a blank or a raw byte.
func TestAddressRefusalShowsTheCharacter(t *testing.T) {
	for addr, want := range map[string]string{
		"alice smith@example.com": `address: invalid address "alice smith@example.com": character ' ' not allowed in an unquoted local part`,
		"alice\t@example.com":     `address: invalid address "alice\t@example.com": control character '\t'`,
		"a\x7fb@example.com":      `address: invalid address "a\x7fb@example.com": control character '\x7f'`,
		"alice@exa mple.com":      `address: invalid address "alice@exa mple.com": character ' ' not allowed in a domain`,
		"alice@example.com>":      `address: invalid address "alice@example.com>": character '>' not allowed in a domain`,
		"<alice@example.com":      `address: invalid address "<alice@example.com": character '<' not allowed in an unquoted local part`,
	} {
		err := CheckAddress(addr)
		if err == nil || err.Error() != want {
			t.Errorf("CheckAddress(%q) = %v\nwant %s", addr, err, want)
		}
	}
}

// An EHLO name that could end the command line and start another is
// refused by Dial before it connects: the library holds the rule, not
// each caller (RFC 5321 section 4.1.1.1).
func TestDialRefusesBadLocalName(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			accepted <- struct{}{}
			c.Close()
		}
	}()
	for _, name := range []string{"client.test\r\nRSET", "bücher.example", "has space.test", "a..b"} {
		_, err := Dial(context.Background(), ln.Addr().String(), &Options{LocalName: name, TLSMode: security.TLSNone})
		codeIs(t, err, mailsec.Config)
		if !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
			t.Errorf("%q: error %q does not name the value", name, err)
		}
	}
	for _, name := range []string{"client.example.test", "[192.0.2.1]", "[IPv6:2001:db8::1]"} {
		if err := CheckLocalName(name); err != nil {
			t.Errorf("%q refused: %v", name, err)
		}
	}
	select {
	case <-accepted:
		t.Error("Dial connected despite the bad EHLO name")
	case <-time.After(100 * time.Millisecond):
	}
}
