package smtp

import "testing"

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
