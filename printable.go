package mailsec

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Printable returns s safe to write to a terminal: control characters
// (C0 but TAB, DEL, C1) and invalid UTF-8 are shown as \xNN or \u00NN.
// Whatever a server sends (reply text, a certificate's subject) ends up in
// transcripts and error messages on the user's terminal, where raw ESC
// sequences could retitle the window, rewrite what was printed before, or
// write the clipboard (OSC 52); a raw 0x9b is CSI on 8-bit terminals.
func Printable(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x80 && unsafeRune(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case unsafeRune(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return (r < 0x20 && r != '\t') || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == utf8.RuneError
}
