package pop3d

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// Files written by other programs may use LF line ends or lack the final
// one; the wire form is CRLF throughout, byte-stuffed.
func TestWriteMessage(t *testing.T) {
	for _, tc := range []struct {
		in    string
		lines int
		want  string
	}{
		{"a: b\r\n\r\n.x\r\n..\r\n", -1, "a: b\r\n\r\n..x\r\n...\r\n"},
		{"a: b\n\n.\nlast", -1, "a: b\r\n\r\n..\r\nlast\r\n"},
		{"a: b\r\n\r\n1\r\n2\r\n3\r\n", 2, "a: b\r\n\r\n1\r\n2\r\n"},
		{"a: b\r\n\r\n1\r\n", 0, "a: b\r\n\r\n"},
		{"no header end\r\n", 0, "no header end\r\n"},
		{"bare\rcr\r\n", -1, "bare\rcr\r\n"},
		{"", -1, ""},
	} {
		var b bytes.Buffer
		w := bufio.NewWriter(&b)
		n, err := writeMessage(w, strings.NewReader(tc.in), tc.lines)
		w.Flush()
		if err != nil || b.String() != tc.want || (tc.lines < 0 && n != int64(len(tc.in))) {
			t.Errorf("%q top %d: got %q (%d read, %v), want %q", tc.in, tc.lines, b.String(), n, err, tc.want)
		}
	}
}

func TestUID(t *testing.T) {
	name := "1763920000.M1P2Q3.host"
	if uidOf(name) != name {
		t.Error(uidOf(name))
	}
	long := strings.Repeat("h", 80)
	if u := uidOf(long); len(u) > 70 || u != uidOf(long) || u == long {
		t.Errorf("%q", u)
	}
}
