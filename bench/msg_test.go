package bench

import (
	"bytes"
	"io"
	"testing"
)

func TestMessageSize(t *testing.T) {
	for _, n := range []int{0, 10, 200, 4096, 4097, 4098, 100000, 1 << 20} {
		m := Message(n)
		if len(m) != n {
			t.Errorf("Message(%d) has %d octets", n, len(m))
		}
		if n > 200 && !bytes.HasSuffix(m, []byte("\r\n")) && !bytes.HasSuffix(m, []byte(" ")) {
			t.Errorf("Message(%d) ends %q", n, m[len(m)-4:])
		}
		if n > 200 && (bytes.Count(m, []byte("\n")) != bytes.Count(m, []byte("\r\n")) || bytes.Count(m, []byte("\r")) != bytes.Count(m, []byte("\r\n"))) {
			t.Errorf("Message(%d) has bare CR or LF", n)
		}
		k, _ := io.Copy(io.Discard, StreamMessage(int64(n)))
		if k != int64(n) {
			t.Errorf("StreamMessage(%d) yields %d", n, k)
		}
	}
}
