package bench

import (
	"bytes"
	"flag"
	"io"
	"os"
	"testing"

	"github.com/mailsec/mailsec/bench/sink"
)

var (
	rttFlag    = flag.Duration("rtt", 0, "simulated round-trip time added to the sink's replies")
	inprocFlag = flag.Bool("inproc", false, "run the sink in the test process (then -benchmem and profiles include the server)")
)

func TestMain(m *testing.M) {
	sink.RunChildIfRequested()
	flag.Parse()
	os.Exit(m.Run())
}

// startSink runs a sink for one benchmark, in a child process unless
// -inproc.
func startSink(b *testing.B, hideChunking bool) *sink.Sink {
	b.Helper()
	start := sink.Spawn
	if *inprocFlag {
		start = sink.Start
	}
	s, err := start(sink.Config{RTT: *rttFlag, HideChunking: hideChunking})
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// benchSend sends b.N messages over one session of dial, each made by msg,
// and checks that the sink received them all.
func benchSend(b *testing.B, dial func(*sink.Sink, int64) (Sender, error), hideChunking bool, size int64, msg func() io.Reader) {
	s := startSink(b, hideChunking)
	c, err := dial(s, size)
	if err != nil {
		s.Close()
		b.Fatal(err)
	}
	// One untimed message opens the transaction machinery.
	if err := c.Send(msg()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Send(msg()); err != nil {
			b.Fatalf("message %d: %v", i, err)
		}
	}
	b.StopTimer()
	if err := c.Quit(); err != nil {
		b.Error(err)
	}
	st, err := s.Close()
	if err != nil {
		b.Fatal(err)
	}
	if st.Messages != int64(b.N)+1 {
		b.Fatalf("the sink received %d messages, %d were sent", st.Messages, b.N+1)
	}
}

// send4K returns a message source that re-reads one 4 KiB message, so the
// benchmark itself allocates nothing per message.
func send4K() (int64, func() io.Reader) {
	m := Message(4096)
	r := bytes.NewReader(m)
	return int64(len(m)), func() io.Reader { r.Reset(m); return r }
}

// BenchmarkMailsec4K sends 4 KiB messages with mailsec: PIPELINING, and
// BDAT since go-smtp's server offers CHUNKING.
func BenchmarkMailsec4K(b *testing.B) {
	n, msg := send4K()
	benchSend(b, unsized(DialMailsec), false, n, msg)
}

// BenchmarkMailsec4KData is BenchmarkMailsec4K with CHUNKING hidden, so
// mailsec uses PIPELINING and DATA.
func BenchmarkMailsec4KData(b *testing.B) {
	n, msg := send4K()
	benchSend(b, unsized(DialMailsec), true, n, msg)
}

// BenchmarkMailsec4KSizeHint is BenchmarkMailsec4K with MailOptions.Size
// set, which sizes mailsec's BDAT buffer to the message.
func BenchmarkMailsec4KSizeHint(b *testing.B) {
	n, msg := send4K()
	benchSend(b, DialMailsecSized, false, n, msg)
}

// BenchmarkNetSMTP4K sends 4 KiB messages with net/smtp.
func BenchmarkNetSMTP4K(b *testing.B) {
	n, msg := send4K()
	benchSend(b, unsized(DialNetSMTP), false, n, msg)
}

// BenchmarkGoSMTP4K sends 4 KiB messages with emersion/go-smtp's client.
func BenchmarkGoSMTP4K(b *testing.B) {
	n, msg := send4K()
	benchSend(b, unsized(DialGoSMTP), false, n, msg)
}

const size50M = 50 << 20

// BenchmarkMailsec50MiB sends a 50 MiB message generated while it is read,
// so B/op shows what the client allocates per message; it should not grow
// with the message size (compare BenchmarkMailsec4K).
func BenchmarkMailsec50MiB(b *testing.B) {
	benchSend(b, unsized(DialMailsec), false, size50M, func() io.Reader { return StreamMessage(size50M) })
}

// BenchmarkMailsec50MiBData is BenchmarkMailsec50MiB over DATA.
func BenchmarkMailsec50MiBData(b *testing.B) {
	benchSend(b, unsized(DialMailsec), true, size50M, func() io.Reader { return StreamMessage(size50M) })
}
