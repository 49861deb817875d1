package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/sasl"
)

// FuzzSMTPCommand checks that the command and path parsers never panic and
// that what they accept is well-formed.
func FuzzSMTPCommand(f *testing.F) {
	for _, s := range []string{"MAIL FROM:<a@b.c> SIZE=10 BODY=8BITMIME", "RCPT TO:<\"q\\\"x\"@[IPv6:::1]> NOTIFY=NEVER",
		"EHLO x", "RCPT TO:<@r1,@r2:u@d>", "MAIL FROM:<>", "BDAT 10 LAST", "MAIL FROM:<jörg@exämple.de> SMTPUTF8"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, r := parseCommand(line)
		if r != nil {
			return
		}
		if cmd.verb != strings.ToUpper(cmd.verb) {
			t.Fatalf("verb %q not upper case", cmd.verb)
		}
		for _, prefix := range []string{"FROM:", "TO:"} {
			p, ok := parsePathArg(cmd.arg, prefix)
			if !ok {
				continue
			}
			if strings.ContainsAny(p.addr, "\r\n<>") && !strings.HasPrefix(p.local, "\"") {
				t.Fatalf("accepted address %q", p.addr)
			}
			for _, pm := range p.params {
				if !validKeyword(pm.key) {
					t.Fatalf("bad keyword %q", pm.key)
				}
			}
		}
	})
}

// FuzzDATAReader feeds arbitrary bytes to the DATA reader: it must not
// panic, must end at the first proper CRLF.CRLF and never anywhere else,
// and must refuse every message with a bare CR or LF or a NUL.
func FuzzDATAReader(f *testing.F) {
	for _, s := range []string{"a\r\n.\r\n", "..x\r\n.\r\n", "a\n.\nb\r\n.\r\n", "a\r\n.\nMAIL\r\n.\r\n",
		".\r\n", "x\ry\r\n.\r\n", strings.Repeat("z", 1100) + "\r\n.\r\n", "a\r\n\x00.\r\nb\r\n.\r\n"} {
		f.Add([]byte(s), uint16(64))
	}
	f.Fuzz(func(t *testing.T, in []byte, limit uint16) {
		// A small buffer makes long lines come in pieces.
		src := bytes.NewReader(in)
		d := newDataReader(bufio.NewReaderSize(src, 16), int64(limit))
		out, err := io.ReadAll(d)
		// Where the data must end: the first ".\r\n" line after a CRLF.
		end := -1
		if bytes.HasPrefix(in, []byte(".\r\n")) {
			end = 3
		} else if i := bytes.Index(in, []byte("\r\n.\r\n")); i >= 0 {
			end = i + 5
		}
		if end < 0 {
			if err == nil || errors.As(err, new(*reply)) {
				t.Fatalf("no end marker but err=%v", err)
			}
			return
		}
		body := in[:end-3]
		var r *reply
		bad := bytes.Contains(bytes.ReplaceAll(body, []byte("\r\n"), nil), []byte("\n")) ||
			bytes.Contains(bytes.ReplaceAll(body, []byte("\r\n"), nil), []byte("\r")) ||
			bytes.IndexByte(body, 0) >= 0
		switch {
		case err == nil:
			if bad {
				t.Fatalf("bare CR/LF accepted in %q", body)
			}
			if len(out) > int(limit) {
				t.Fatalf("%d octets over the limit %d", len(out), limit)
			}
		case errors.As(err, &r):
		default:
			t.Fatalf("error %v with an end marker", err)
		}
		if left := d.r.Buffered() + src.Len(); left != len(in)-end {
			t.Fatalf("stopped at %d, end marker ends at %d", len(in)-left, end)
		}
	})
}

// FuzzDATAReaderBulk checks the DATA reader's bulk path against its
// line-at-a-time path: read one octet at a time the reader can never take
// a run of lines at once, so both reads of the same input must hand out
// the same octets, end in the same way and stop at the same place.
func FuzzDATAReaderBulk(f *testing.F) {
	for _, s := range []string{"a\r\nb\r\n.\r\n", "ab\r\n..x\r\ncd\r\n.\r\n", "a\r\nb\nc\r\n.\r\n", "a\r\nb\rc\r\n.\r\n",
		"x\r\n" + strings.Repeat("z", 1000) + "\r\n.\r\n", "x\r\n" + strings.Repeat("z", 997) + "\r\ny\r\n.\r\n", "a\r\nb\r", "a\r\nb\x00c\r\nd\r\n.\r\n"} {
		f.Add([]byte(s), uint16(64), uint16(512))
	}
	f.Fuzz(func(t *testing.T, in []byte, limit, bufSize uint16) {
		read := func(chunk int) ([]byte, error, int64, int) {
			src := bytes.NewReader(in)
			d := newDataReader(bufio.NewReaderSize(src, int(bufSize)), int64(limit))
			var out []byte
			buf := make([]byte, chunk)
			var err error
			for {
				var n int
				n, err = d.Read(buf)
				out = append(out, buf[:n]...)
				if err != nil {
					break
				}
			}
			return out, err, d.n, d.r.Buffered() + src.Len()
		}
		out1, err1, n1, left1 := read(1)
		outN, errN, nN, leftN := read(64 << 10)
		if !bytes.Equal(out1, outN) || n1 != nN || left1 != leftN {
			t.Fatalf("line by line %q (n %d, %d left), bulk %q (n %d, %d left)", out1, n1, left1, outN, nN, leftN)
		}
		var r1, rN *reply
		if errors.As(err1, &r1) != errors.As(errN, &rN) || r1 != rN || (r1 == nil && !errors.Is(errN, err1)) {
			t.Fatalf("line by line ends with %v, bulk with %v", err1, errN)
		}
	})
}

// fuzzUsers is a user store without password hashing cost.
type fuzzUsers struct{}

func (fuzzUsers) CheckPassword(u, p string) bool { return u == "alice" && p == "secret" }
func (fuzzUsers) SCRAMSHA256(string) (sasl.StoredCredentials, bool) {
	return sasl.StoredCredentials{}, false
}
func (fuzzUsers) Exists(n string) bool { return n == "alice" }

// FuzzSession runs whole sessions, each kind, from fuzzed client bytes over
// net.Pipe: nothing may panic or hang.
func FuzzSession(f *testing.F) {
	for _, s := range []string{
		"EHLO a\r\nMAIL FROM:<x@y>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n",
		"EHLO a\r\nSTARTTLS\r\nMAIL FROM:<x@y>\r\n",
		"EHLO a\r\nMAIL FROM:<x@y>\r\nRCPT TO:<alice@localhost>\r\nBDAT 4\r\nab\r\nBDAT 0 LAST\r\nQUIT\r\n",
		"EHLO a\r\nMAIL FROM:<x@y>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\nx\n.\nQUIT\r\n.\r\n",
		"AUTH PLAIN AGFsaWNlAHNlY3JldA==\r\nHELO b\r\nRSET\r\nVRFY x\r\n",
	} {
		f.Add([]byte(s), uint8(0))
	}
	srvTLS, _ := testTLS()
	f.Fuzz(func(t *testing.T, in []byte, kind uint8) {
		s := &Server{Hostname: "fuzz", TLSConfig: srvTLS, Users: fuzzUsers{}, Backend: Discard{},
			Limits: Limits{CommandTimeout: 200 * time.Millisecond, DataTimeout: 300 * time.Millisecond, AuthFailureDelay: -1}}
		s.setup()
		a, b := net.Pipe()
		done := make(chan struct{})
		go func() {
			s.handle(a, Kind(kind%2), TLSMay) // SMTPS would only see a failed handshake
			close(done)
		}()
		go io.Copy(io.Discard, b)
		b.SetWriteDeadline(time.Now().Add(time.Second))
		b.Write(in)
		b.Close()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatal("session hangs")
		}
	})
}
