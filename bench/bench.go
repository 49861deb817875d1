// Package bench measures mailsec's SMTP client beside Go's net/smtp and
// emersion/go-smtp's client: each sends messages over one STARTTLS session
// to the same sink (package bench/sink). The program bench/smtpsend prints
// the comparison as a table; bench_test.go has the same as Go benchmarks.
package bench

import (
	"bytes"
	"context"
	"crypto/x509"
	"fmt"
	"io"
	netsmtp "net/smtp"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailsec/mailsec/bench/sink"
	"github.com/mailsec/mailsec/smtp"
	"github.com/mailsec/mailsec/tlsconf"
)

// The envelope of every benchmark message.
const (
	From = "bench@example.org"
	To   = "sink@example.net"
)

// Sender is one client's session: Send delivers one message, Quit ends the
// session.
type Sender interface {
	Send(msg io.Reader) error
	Quit() error
}

// Client names a client and dials a session with it.
type Client struct {
	// Name is how the client appears in reports.
	Name string
	// Dial opens a STARTTLS session to the sink for messages of size
	// octets (only a client told to announce the size uses it).
	Dial func(s *sink.Sink, size int64) (Sender, error)
}

// Clients are the clients compared, net/smtp first since the others are
// reported relative to it.
var Clients = []Client{
	{Name: "net/smtp", Dial: unsized(DialNetSMTP)},
	{Name: "emersion/go-smtp", Dial: unsized(DialGoSMTP)},
	{Name: "mailsec", Dial: unsized(DialMailsec)},
	{Name: "mailsec, Size hint", Dial: DialMailsecSized},
	{Name: "mailsec, SendBatch", Dial: unsized(DialMailsecBatch)},
}

// unsized adapts a dial function that takes no size hint to Client.Dial.
func unsized(dial func(*sink.Sink) (Sender, error)) func(*sink.Sink, int64) (Sender, error) {
	return func(s *sink.Sink, _ int64) (Sender, error) { return dial(s) }
}

// BatchSender is a Sender that can also hand many messages over in one call.
type BatchSender interface {
	Sender
	SendBatch(msgs []io.Reader) error
}

// DialMailsecBatch is DialMailsec whose messages go through SendBatch.
func DialMailsecBatch(s *sink.Sink) (Sender, error) {
	m, err := dialMailsec(s, nil)
	if err != nil {
		return nil, err
	}
	return &mailsecBatch{m.(*mailsecSender)}, nil
}

type mailsecBatch struct{ *mailsecSender }

func (m *mailsecBatch) SendBatch(msgs []io.Reader) error {
	batch := make([]smtp.Message, len(msgs))
	for i, r := range msgs {
		batch[i] = smtp.Message{From: From, To: []string{To}, Body: r}
	}
	for _, r := range m.c.SendBatch(m.ctx, batch) {
		m.last = r.Result
		if r.Err != nil {
			return r.Err
		}
	}
	return nil
}

// DialMailsec opens a mailsec session with mandatory STARTTLS. It uses
// PIPELINING, and CHUNKING when the sink offers it.
func DialMailsec(s *sink.Sink) (Sender, error) { return dialMailsec(s, nil) }

// DialMailsecSized is DialMailsec with MailOptions.Size set to size on
// every message, as a caller that knows the size would: mailsec then
// announces SIZE= and sizes its BDAT buffer to the message.
func DialMailsecSized(s *sink.Sink, size int64) (Sender, error) {
	return dialMailsec(s, &smtp.MailOptions{Size: size})
}

func dialMailsec(s *sink.Sink, opts *smtp.MailOptions) (Sender, error) {
	ctx := context.Background()
	c, err := smtp.Dial(ctx, s.Addr, &smtp.Options{
		TLSMode:   smtp.TLSStartTLS,
		TLS:       tlsconf.Options{RootCAs: s.RootCAs, ServerName: sink.ServerName},
		LocalName: "client.example.org",
	})
	if err != nil {
		return nil, err
	}
	return &mailsecSender{c: c, ctx: ctx, opts: opts}, nil
}

type mailsecSender struct {
	c    *smtp.Client
	ctx  context.Context
	opts *smtp.MailOptions
	last *smtp.Result
}

func (m *mailsecSender) Send(msg io.Reader) error {
	res, err := m.c.Send(m.ctx, From, []string{To}, msg, m.opts)
	m.last = res
	return err
}

func (m *mailsecSender) Quit() error { return m.c.Quit(m.ctx) }

// DialNetSMTP opens a net/smtp session and starts TLS. net/smtp has no
// pipelining or chunking: each command waits for its reply.
func DialNetSMTP(s *sink.Sink) (Sender, error) {
	c, err := netsmtp.Dial(s.Addr)
	if err != nil {
		return nil, err
	}
	if err := c.Hello("client.example.org"); err != nil {
		c.Close()
		return nil, err
	}
	if err := c.StartTLS(s.TLSConfig()); err != nil {
		c.Close()
		return nil, err
	}
	return &netSender{c: c}, nil
}

type netSender struct{ c *netsmtp.Client }

func (n *netSender) Send(msg io.Reader) error {
	if err := n.c.Mail(From); err != nil {
		return err
	}
	if err := n.c.Rcpt(To); err != nil {
		return err
	}
	w, err := n.c.Data()
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, msg); err != nil {
		return err
	}
	return w.Close()
}

func (n *netSender) Quit() error { return n.c.Quit() }

// DialGoSMTP opens an emersion/go-smtp client session with STARTTLS. Its
// client sends one command at a time and uses DATA.
func DialGoSMTP(s *sink.Sink) (Sender, error) {
	c, err := gosmtp.DialStartTLS(s.Addr, s.TLSConfig())
	if err != nil {
		return nil, err
	}
	return &goSender{c: c}, nil
}

type goSender struct{ c *gosmtp.Client }

func (g *goSender) Send(msg io.Reader) error { return g.c.SendMail(From, []string{To}, msg) }
func (g *goSender) Quit() error              { return g.c.Quit() }

// Transfer describes how a sender's last message went: PIPELINING or not,
// DATA or BDAT.
func Transfer(s Sender) string {
	batch := ""
	if b, ok := s.(*mailsecBatch); ok {
		s, batch = b.mailsecSender, ", batch"
	}
	m, ok := s.(*mailsecSender)
	if !ok {
		return "DATA, one command per round trip"
	}
	if m.last == nil {
		return "?"
	}
	t := "DATA"
	if m.last.Chunking {
		t = "BDAT"
	}
	if m.last.Pipelining {
		t = "PIPELINING + " + t
	}
	return t + batch
}

// Message returns a message of exactly size octets (at least the header's
// length): a header, then 76-character lines, all ending in CRLF.
func Message(size int) []byte {
	var b bytes.Buffer
	b.Grow(size)
	io.Copy(&b, StreamMessage(int64(size)))
	return b.Bytes()
}

// StreamMessage returns a reader of a message of size octets made as it is
// read, in constant memory, so that a large message costs nothing to hold:
// a header, then 78-octet lines, then a last shorter line. Every line ends
// in CRLF, except that a lone octet left after the last full line is a
// space (the clients then add the final CRLF).
func StreamMessage(size int64) io.Reader {
	hdr := "From: <" + From + ">\r\nTo: <" + To + ">\r\nSubject: benchmark\r\nMessage-ID: <bench@example.org>\r\n\r\n"
	body := size - int64(len(hdr))
	if body < 0 {
		return io.LimitReader(strings.NewReader(hdr), size)
	}
	return io.MultiReader(strings.NewReader(hdr), &lines{full: body / int64(len(line)) * int64(len(line)), n: body})
}

// line is one body line.
var line = []byte("The quick brown fox jumps over the lazy dog. 0123456789 abcdefghijklmnopqr\r\n")

// lines yields n octets: repeated copies of line up to full, then one
// padded line.
type lines struct {
	full, n, pos int64
}

func (l *lines) Read(p []byte) (int, error) {
	if l.pos >= l.n {
		return 0, io.EOF
	}
	total := 0
	for len(p) > 0 && l.pos < l.full {
		k := copy(p, line[l.pos%int64(len(line)):])
		if int64(k) > l.full-l.pos {
			k = int(l.full - l.pos)
		}
		p, l.pos, total = p[k:], l.pos+int64(k), total+k
	}
	for len(p) > 0 && l.pos < l.n {
		b := byte('x')
		switch rem := l.n - l.full; {
		case rem == 1:
			b = ' '
		case l.pos == l.n-2:
			b = '\r'
		case l.pos == l.n-1:
			b = '\n'
		}
		p[0], p, l.pos, total = b, p[1:], l.pos+1, total+1
	}
	return total, nil
}

// Verify checks that a Sender works by sending one message through it.
func Verify(s Sender) error {
	return s.Send(bytes.NewReader(Message(512)))
}

// StartProfile starts CPU profiling into dir/cpu.pprof and samples
// allocations 128 times as often as by default (one per 4 KiB); stop
// writes dir/allocs.pprof. The benchmarks' server children call it for
// their -profile flags.
func StartProfile(dir string) (stop func(), err error) {
	f, err := os.Create(filepath.Join(dir, "cpu.pprof"))
	if err != nil {
		return nil, err
	}
	runtime.MemProfileRate = 4096
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		runtime.GC() // the profile shows the allocations up to the last GC
		if h, err := os.Create(filepath.Join(dir, "allocs.pprof")); err == nil {
			pprof.Lookup("allocs").WriteTo(h, 0)
			h.Close()
		}
	}, nil
}

// CertPoolFile reads the PEM certificates of path (a benchmark child's
// generated CA) into a pool; it returns the PEM too.
func CertPoolFile(path string) (*x509.CertPool, []byte, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, nil, fmt.Errorf("%s: no PEM certificate", path)
	}
	return pool, pem, nil
}
