package pop3

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"
)

// stuffedMessage is a message of size octets in stuffed wire form, with 76
// octet lines of which every tenth starts with a dot.
func stuffedMessage(size int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < size; i++ {
		if i%10 == 0 {
			b.WriteString("..")
		}
		b.WriteString(strings.Repeat("x", 74) + "\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// BenchmarkRetrReader measures the RETR body reader alone: B/op stays the
// same whatever the message size, since nothing is held whole.
func BenchmarkRetrReader(b *testing.B) {
	for _, size := range []int{64 << 10, 1 << 20, 16 << 20} {
		msg := stuffedMessage(size)
		b.Run(byteSize(size), func(b *testing.B) {
			buf := make([]byte, 32<<10)
			src := bytes.NewReader(msg)
			br := bufio.NewReaderSize(src, bufSize)
			b.SetBytes(int64(len(msg)))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(msg)
				br.Reset(src)
				if _, err := io.CopyBuffer(io.Discard, onlyReader{newDotReader(br)}, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// onlyReader hides WriterTo so io.CopyBuffer uses the given buffer.
type onlyReader struct{ io.Reader }

func byteSize(n int) string {
	if n >= 1<<20 {
		return strconv.Itoa(n>>20) + "MiB"
	}
	return strconv.Itoa(n>>10) + "KiB"
}
