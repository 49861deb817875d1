package smtp

import (
	"bufio"
	"bytes"
	"strings"
	"testing"
)

// FuzzReadReply feeds arbitrary server output to the reply parser: it must
// never panic, never return a reply with a code outside 200-599, and never
// accept a line longer than the limit or one holding a CR or LF (a line
// ends only at CRLF, RFC 5321 section 2.3.8).
func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"250 OK\r\n", "250-a\r\n250 b\r\n", "550 5.1.1 <x@y>: unknown\r\n",
		"250-x\r\n251 y\r\n", "2\r\n", "999 x\r\n", "250 " + strings.Repeat("a", 5000) + "\r\n",
		"220 hi\n", "334 \r\n", "250-\r\n250\r\n", "\xff\xfe\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		rep, err := readReply(bufio.NewReader(bytes.NewReader(in)), nil)
		if err != nil {
			return
		}
		if rep.Code < 200 || rep.Code > 599 {
			t.Fatalf("code %d accepted", rep.Code)
		}
		for _, l := range rep.Lines {
			if len(l) > maxReplyLine {
				t.Fatalf("line of %d octets accepted", len(l))
			}
			if strings.ContainsAny(l, "\r\n") {
				t.Fatalf("line %q with a bare CR or LF accepted", l)
			}
		}
	})
}

// FuzzCheckAddress: an accepted address can never carry anything that ends
// or extends the command line.
func FuzzCheckAddress(f *testing.F) {
	for _, s := range []string{"a@b.c", "", "postmaster", "\"a b\"@c.d", "a@[127.0.0.1]",
		"x@y>\r\nRCPT TO:<z@w", "ü@例え.jp", "a@b..c", "a\x00@b.c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		if _, err := checkAddress(addr, true); err != nil {
			return
		}
		if strings.ContainsAny(addr, "\r\n\x00<>") {
			t.Fatalf("accepted %q", addr)
		}
	})
}

// FuzzCopyMessage: whatever the input, the output has only CRLF line
// endings and no line that starts with a single dot.
func FuzzCopyMessage(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", "\n.\n", "x\ry", ".", "..\r\n.", "a\r"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		if _, err := copyMessage(&out, bytes.NewReader(in), make([]byte, 7), true, true); err != nil {
			t.Fatal(err)
		}
		b := out.Bytes()
		for i, c := range b {
			if c == '\n' && (i == 0 || b[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, b)
			}
			if c == '\r' && (i+1 >= len(b) || b[i+1] != '\n') {
				t.Fatalf("bare CR at %d in %q", i, b)
			}
		}
		for _, line := range strings.Split(string(b), "\r\n") {
			if strings.HasPrefix(line, ".") && !strings.HasPrefix(line, "..") {
				t.Fatalf("unstuffed dot line %q", line)
			}
		}
	})
}
