package smtpd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/store"
)

// benchServer starts an MX listener delivering to backend.
func benchServer(b *testing.B, backend Backend, maxSize int64) string {
	srvTLS, _ := testTLS()
	s := &Server{Hostname: "bench", TLSConfig: srvTLS, Users: fuzzUsers{}, Backend: backend,
		Limits: Limits{MaxMessageSize: maxSize}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(ln, MX, TLSMay)
	b.Cleanup(func() { ln.Close() })
	return ln.Addr().String()
}

// benchMessage is a 4 KiB message of 78-octet lines.
var benchMessage = "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 52)

// BenchmarkSessionSTARTTLS measures whole sessions over loopback: connect,
// EHLO, STARTTLS (full handshake), EHLO, one 4 KiB message, QUIT.
func BenchmarkSessionSTARTTLS(b *testing.B) {
	for _, bk := range []struct {
		name    string
		backend func(b *testing.B) Backend
	}{
		{"discard", func(*testing.B) Backend { return Discard{} }},
		{"maildir", func(b *testing.B) Backend {
			st, err := store.New(filepath.Join(b.TempDir(), "mail"))
			if err != nil {
				b.Fatal(err)
			}
			return Maildir{Store: st}
		}},
	} {
		b.Run(bk.name, func(b *testing.B) {
			addr := benchServer(b, bk.backend(b), 0)
			_, cli := testTLS()
			b.ResetTimer()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				benchSession(b, addr, cli)
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
		})
	}
}

func benchSession(b *testing.B, addr string, cli *tls.Config) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	expect := func(code string) {
		for {
			line, err := r.ReadString('\n')
			if err != nil || !strings.HasPrefix(line, code) {
				b.Fatalf("want %s, got %q %v", code, line, err)
			}
			if line[3] == ' ' {
				return
			}
		}
	}
	expect("220")
	io.WriteString(c, "EHLO bench\r\n")
	expect("250")
	io.WriteString(c, "STARTTLS\r\n")
	expect("220")
	tc := tls.Client(c, cli)
	r = bufio.NewReader(tc)
	// Pipelined like a real client (RFC 2920).
	io.WriteString(tc, "EHLO bench\r\nMAIL FROM:<b@bench>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n")
	for _, code := range []string{"250", "250", "250", "354"} {
		expect(code)
	}
	io.WriteString(tc, benchMessage+".\r\nQUIT\r\n")
	expect("250")
	expect("221")
}

// BenchmarkDATAThroughput sends 100 MiB messages over one plaintext
// loopback session to the discard backend; the MB/s column is the DATA
// reader's speed including TCP.
func BenchmarkDATAThroughput(b *testing.B) {
	const size = 100 << 20
	addr := benchServer(b, Discard{}, 2*size)
	line := strings.Repeat("y", 76) + "\r\n"
	msg := []byte(strings.Repeat(line, size/len(line)) + ".\r\n")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	read := func(code string) {
		line, err := r.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, code) {
			b.Fatalf("want %s, got %q %v", code, line, err)
		}
	}
	read("220")
	io.WriteString(c, "HELO bench\r\n")
	read("250")
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		io.WriteString(c, "MAIL FROM:<b@bench>\r\nRCPT TO:<alice@localhost>\r\nDATA\r\n")
		read("250")
		read("250")
		read("354")
		if _, err := c.Write(msg); err != nil {
			b.Fatal(err)
		}
		read("250")
	}
}

// BenchmarkDATAReader measures the reader alone, from memory.
func BenchmarkDATAReader(b *testing.B) {
	line := strings.Repeat("y", 76) + "\r\n"
	msg := []byte(strings.Repeat(line, (8<<20)/len(line)) + ".\r\n")
	buf := make([]byte, 256<<10)
	src := bytes.NewReader(msg)
	br := bufio.NewReaderSize(src, readBufferSize)
	b.SetBytes(int64(len(msg)))
	for i := 0; i < b.N; i++ {
		src.Reset(msg)
		br.Reset(src)
		if _, err := io.CopyBuffer(io.Discard, onlyReader{newDataReader(br, 1<<30)}, buf); err != nil {
			b.Fatal(err)
		}
	}
}

// onlyReader hides io.Discard's ReaderFrom path so the 256 KiB buffer is used,
// as the Maildir store does.
type onlyReader struct{ io.Reader }
