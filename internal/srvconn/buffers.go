package srvconn

import (
	"bufio"
	"errors"
	"io"
	"sync"
	"time"
)

// waitSize is what a waiting session reads with its own memory: a
// command line, or a small pipelined group of them, fits (RFC 5321
// section 4.5.3.1.4 allows 512 octets), so a plaintext client costs no
// extra read system call per command.
const waitSize = 512

// Pool lends buffered readers and writers of fixed sizes. A session holds
// them only while it has work (Buffers.Wait gives them back while it waits
// for its client), so that the memory of idle sessions does not grow with
// the buffer sizes: 10,000 idle sessions with 64 KiB readers would
// otherwise pin 640 MiB.
type Pool struct {
	readSize, writeSize int
	readers, writers    sync.Pool
}

// NewPool makes a pool of readers of readSize and writers of writeSize
// octets.
func NewPool(readSize, writeSize int) *Pool {
	p := &Pool{readSize: readSize, writeSize: writeSize}
	p.readers.New = func() any { return bufio.NewReaderSize(nil, p.readSize) }
	p.writers.New = func() any { return bufio.NewWriterSize(nil, p.writeSize) }
	return p
}

// Buffers are one session's reader and writer over src and dst. R and W
// are valid except inside Wait and after Release.
type Buffers struct {
	R *bufio.Reader
	W *bufio.Writer

	pool  *Pool
	dst   io.Writer
	first firstReader
}

// Get returns buffers reading from src and writing to dst.
func (p *Pool) Get(src io.Reader, dst io.Writer) *Buffers {
	b := &Buffers{pool: p, dst: dst, first: firstReader{src: src}}
	b.take()
	return b
}

func (b *Buffers) take() {
	b.R = b.pool.readers.Get().(*bufio.Reader)
	b.R.Reset(&b.first)
	b.W = b.pool.writers.Get().(*bufio.Writer)
	b.W.Reset(b.dst)
}

// Release gives the buffers back for good; whatever they hold is dropped
// (after STARTTLS that is the point: nothing read before the handshake may
// be used after it). It does nothing on nil or released buffers.
func (b *Buffers) Release() {
	if b == nil || b.R == nil {
		return
	}
	b.R.Reset(nil)
	b.pool.readers.Put(b.R)
	b.W.Reset(nil)
	b.pool.writers.Put(b.W)
	b.R, b.W = nil, nil
}

// Wait blocks until the client sends something, holding no pooled buffer
// meanwhile. The caller must have flushed W and read everything R
// buffered. When Wait returns R and W are valid again (also on an error,
// so that a last reply can be sent), and R yields the octets read first.
func (b *Buffers) Wait() error {
	b.Release()
	n, err := b.first.src.Read(b.first.buf[:])
	b.first.pre = b.first.buf[:n]
	b.take()
	if n > 0 {
		return nil
	}
	return err
}

// firstReader yields the octets Wait read, then reads from src.
type firstReader struct {
	src io.Reader
	buf [waitSize]byte
	pre []byte
}

func (f *firstReader) Read(p []byte) (int, error) {
	if len(f.pre) > 0 {
		n := copy(p, f.pre)
		f.pre = f.pre[n:]
		return n, nil
	}
	return f.src.Read(p)
}

// ErrClosed is NextLine's answer once the server is shutting down.
var ErrClosed = errors.New("server shutting down")

// NextLine reads a session's next command line of at most max octets
// (ReadLine), which must arrive whole within timeout. When b holds no
// input it first sends the buffered replies with flush (so the replies to
// a pipelined group go out together) and waits for the client without
// holding the buffers (Buffers.Wait); while it waits g lets Shutdown kick
// the session. It returns ErrClosed, reading nothing, once closed reports
// true.
func NextLine(b *Buffers, g *Guard, closed func() bool, timeout time.Duration, max int, flush func() error) ([]byte, error) {
	wait := b.R.Buffered() == 0
	if wait {
		if err := flush(); err != nil {
			return nil, err
		}
	}
	if !g.StartWait(closed, timeout) {
		return nil, ErrClosed
	}
	defer g.EndWait()
	if wait {
		if err := b.Wait(); err != nil {
			return nil, err
		}
	}
	return ReadLine(b.R, max)
}
