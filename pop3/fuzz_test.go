package pop3

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{"+OK", "+OK 2 320", "-ERR [AUTH] bad", "-ERR [SYS/TEMP] later", "+ ", "+",
		"-ERR [] x", "-ERR [a/]", "+OKAY", "-ERR [IN-USE", "+OK [X\x00Y] z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		rep, err := parseReply(line)
		if err != nil {
			if strings.HasPrefix(line, "+OK ") || strings.HasPrefix(line, "-ERR ") {
				t.Fatalf("%q refused: %v", line, err)
			}
			return
		}
		if rep.OK && !strings.HasPrefix(line, "+OK") || rep.Continue && !strings.HasPrefix(line, "+") {
			t.Fatalf("%q parsed as %+v", line, rep)
		}
		if rep.RespCode != "" {
			if strings.ContainsAny(rep.RespCode, " []") || !strings.Contains(line, "["+rep.RespCode+"]") &&
				!strings.Contains(strings.ToUpper(line), "["+rep.RespCode+"]") {
				t.Fatalf("%q: response code %q", line, rep.RespCode)
			}
		}
		if !strings.Contains(line, rep.Text) {
			t.Fatalf("%q: text %q not in the line", line, rep.Text)
		}
	})
}

// stuff is the sender's side of RFC 1939 section 3: CRLF line ends, a dot
// before every line that starts with one, and the terminating line.
func stuff(msg string) string {
	var b strings.Builder
	lines := strings.SplitAfter(msg, "\r\n")
	for _, l := range lines {
		if l == "" {
			continue
		}
		if strings.HasPrefix(l, ".") {
			b.WriteByte('.')
		}
		b.WriteString(l)
	}
	if msg != "" && !strings.HasSuffix(msg, "\r\n") {
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.String()
}

// FuzzDotReader checks that unstuffing inverts stuffing whatever the
// message and however the octets are split into reads, and that what
// follows the terminator stays unread.
func FuzzDotReader(f *testing.F) {
	for _, s := range []string{"", "a\r\n", ".\r\n", "..\r\n", ".x\r\n.\r", "a\nb\r\n.c", "\r\r\n.\r\n.",
		"a\n.\nb\r\n", ".\n", "a\r\n.\n.\r\n", "\n.\r\n", "x\r.\r\n"} {
		f.Add(s, uint8(0))
		f.Add(s, uint8(1))
	}
	f.Fuzz(func(t *testing.T, msg string, mode uint8) {
		// Bare LFs and CRs stay as they are: only CRLF ends a line (RFC
		// 1939 section 3), so "\n.\n" inside is data and must come back
		// byte for byte.
		want := msg
		if msg != "" && !strings.HasSuffix(msg, "\r\n") {
			want += "\r\n"
		}
		var src io.Reader = strings.NewReader(stuff(msg) + "NEXT")
		switch mode % 3 {
		case 1:
			src = iotest.OneByteReader(src)
		case 2:
			src = iotest.HalfReader(src)
		}
		br := bufio.NewReaderSize(src, 16)
		got, err := io.ReadAll(newDotReader(br))
		if err != nil || string(got) != want {
			t.Fatalf("message %q: got %q, %v", want, got, err)
		}
		rest, _ := io.ReadAll(br)
		if string(rest) != "NEXT" {
			t.Fatalf("after the terminator: %q", rest)
		}
	})
}

// FuzzDotReaderRaw feeds arbitrary server output: no panic, never more
// octets out than in, and a body without terminator is an error.
func FuzzDotReaderRaw(f *testing.F) {
	f.Add([]byte("abc\r\n.\r\n"))
	f.Add([]byte("abc"))
	f.Add([]byte(".\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		got, err := io.ReadAll(newDotReader(bufio.NewReaderSize(bytes.NewReader(in), 16)))
		if len(got) > len(in) {
			t.Fatalf("%d octets out of %d", len(got), len(in))
		}
		terminated := bytes.HasPrefix(in, []byte(".\r\n")) || bytes.Contains(in, []byte("\r\n.\r\n"))
		if err == nil && !terminated {
			t.Fatalf("%q read without error but has no terminator", in)
		}
	})
}

func FuzzParseCapa(f *testing.F) {
	f.Add("STLS\nSASL PLAIN SCRAM-SHA-256\nUSER\nPIPELINING\nIMPLEMENTATION x y")
	f.Add("\n \n sasl  plain ")
	f.Fuzz(func(t *testing.T, text string) {
		lines := strings.Split(text, "\n")
		capa := parseCapa(lines)
		for _, l := range lines {
			fs := strings.Fields(l)
			if len(fs) == 0 {
				continue
			}
			if _, ok := capa[strings.ToUpper(fs[0])]; !ok {
				t.Fatalf("tag of %q missing from %v", l, capa)
			}
		}
		for tag, args := range capa {
			if tag != strings.ToUpper(tag) || tag == "" {
				t.Fatalf("tag %q", tag)
			}
			for _, a := range args {
				if a == "" || strings.ContainsAny(a, " \t") {
					t.Fatalf("argument %q", a)
				}
			}
		}
	})
}
