package srvconn

import (
	"bufio"
	"errors"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/srvconn/srvconntest"
)

// Lines over the limit or the buffer are consumed whole and refused; the
// next line is read normally. A bare LF does not end a line.
func TestReadLine(t *testing.T) {
	in := "ok\r\n" + strings.Repeat("x", 100) + "\r\n" + strings.Repeat("y", 5000) + "\r\nbare\nrest\r\nlast\r\n"
	r := bufio.NewReaderSize(strings.NewReader(in), 64)
	for _, want := range []struct {
		line string
		err  error
	}{{"ok", nil}, {"", ErrLineTooLong}, {"", ErrLineTooLong}, {"", ErrBareCRLF}, {"last", nil}, {"", io.EOF}} {
		got, err := ReadLine(r, 50)
		if string(got) != want.line || !errors.Is(err, want.err) {
			t.Fatalf("got %q %v, want %q %v", got, err, want.line, want.err)
		}
	}
}

// A line ends only at CRLF (RFC 5321 section 2.3.8): whatever bare CR or
// LF it holds, wherever, it is one refused line up to its CRLF, and the
// line after it is read normally; also when a CR and its LF fall into
// different buffer-fulls.
func TestReadLineBareCRLF(t *testing.T) {
	cases := srvconntest.BareLines("NOOP", "QUIT")
	cases["LF at end only"] = "NOOP\n"
	cases["CR then LF"] = "NOOP\r\n\n\r\n"
	cases["long with LF"] = strings.Repeat("x", 40) + "\n" + strings.Repeat("y", 9) + "\r\n"
	for name, in := range cases {
		for _, size := range []int{16, 4096} {
			t.Run(name+"/"+strconv.Itoa(size), func(t *testing.T) {
				input := in
				if name == "LF at end only" {
					input += "QUIT\r\n" // the line goes on to the next CRLF
				}
				if name == "CR then LF" {
					// "NOOP" CRLF is a good line; the LF after it starts a bad one.
					if got, err := ReadLine(bufio.NewReaderSize(strings.NewReader(input), size), 100); string(got) != "NOOP" || err != nil {
						t.Fatalf("got %q %v", got, err)
					}
					input = "\n\r\n"
				}
				r := bufio.NewReaderSize(strings.NewReader(input+"NEXT\r\n"), size)
				got, err := ReadLine(r, 100)
				want := ErrBareCRLF
				if size < len(input) {
					want = ErrLineTooLong // longer than the buffer, and bare too: one refusal either way
				}
				if got != nil || !errors.Is(err, want) {
					t.Fatalf("got %q %v, want %v", got, err, want)
				}
				if got, err := ReadLine(r, 100); string(got) != "NEXT" || err != nil {
					t.Fatalf("the line after: %q %v", got, err)
				}
			})
		}
	}
	// A CR as the last octet of a full buffer and its LF in the next: a
	// CRLF, refused only as too long for the buffer.
	r := bufio.NewReaderSize(strings.NewReader(strings.Repeat("z", 15)+"\r\nok\r\n"), 16)
	if _, err := ReadLine(r, 100); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("CR|LF across buffers: %v", err)
	}
	if got, err := ReadLine(r, 100); string(got) != "ok" || err != nil {
		t.Fatalf("after: %q %v", got, err)
	}
}

func TestTrackerLimits(t *testing.T) {
	var tr Tracker[int]
	tr.Init(2, 1)
	if r := tr.Admit(1, "a"); r != Admitted {
		t.Fatal(r)
	}
	if r := tr.Admit(2, "a"); r != TooManyFromIP {
		t.Fatal(r)
	}
	if r := tr.Admit(3, "b"); r != Admitted {
		t.Fatal(r)
	}
	if r := tr.Admit(4, "c"); r != TooMany {
		t.Fatal(r)
	}
	tr.Release(1)
	if r := tr.Admit(5, "a"); r != Admitted {
		t.Fatal(r)
	}
	kicked := 0
	done := make(chan error)
	go func() { done <- tr.Shutdown(t.Context(), func(int) { kicked++ }, func(int) {}) }()
	for !tr.Closed() {
		runtime.Gosched()
	}
	tr.Release(3)
	tr.Release(5)
	if err := <-done; err != nil || kicked != 2 {
		t.Fatalf("shutdown: %v, %d kicked", err, kicked)
	}
	if r := tr.Admit(6, "d"); r != ShuttingDown {
		t.Fatal(r)
	}
}

// A waiting session holds no pooled buffer; what Wait read comes out of
// the reader first, and replies written before are flushed to dst.
func TestBuffersWait(t *testing.T) {
	pool := NewPool(64, 32)
	src := strings.NewReader("EHLO x\r\nMAIL FROM:<a@b>\r\n")
	var dst strings.Builder
	b := pool.Get(src, &dst)
	b.W.WriteString("220 hi\r\n")
	if err := b.W.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"EHLO x", "MAIL FROM:<a@b>"} {
		if got, err := ReadLine(b.R, 100); string(got) != want || err != nil {
			t.Fatalf("got %q %v, want %q", got, err, want)
		}
	}
	if err := b.Wait(); err != io.EOF || b.R == nil || b.W == nil {
		t.Fatalf("at the end Wait gave %v, buffers %v %v", err, b.R, b.W)
	}
	b.Release()
	if b.R != nil || dst.String() != "220 hi\r\n" {
		t.Fatalf("after Release: %v, wrote %q", b.R, dst.String())
	}
}

// Failures count per address and forget under a flood of addresses.
func TestFailures(t *testing.T) {
	var f Failures
	if n := f.Add("a"); n != 1 {
		t.Fatal(n)
	}
	if n := f.Add("a"); n != 2 {
		t.Fatal(n)
	}
	if n := f.Add("b"); n != 1 {
		t.Fatal(n)
	}
	for i := 0; i < maxFailureIPs; i++ {
		f.Add(strconv.Itoa(i))
	}
	if len(f.m) > maxFailureIPs {
		t.Fatalf("%d addresses remembered", len(f.m))
	}
}

// One IPv6 client usually holds a /64: the per-client limits and the
// failed-login count treat the /64 as one client, IPv4 addresses one by
// one.
func TestClientKeyIPv6Prefix(t *testing.T) {
	var tr Tracker[int]
	tr.Init(10, 1)
	if r := tr.Admit(1, "2001:db8:1:2::1"); r != Admitted {
		t.Fatal(r)
	}
	if r := tr.Admit(2, "2001:db8:1:2:ffff::9"); r != TooManyFromIP {
		t.Fatalf("a second address of the same /64: %v, want TooManyFromIP", r)
	}
	if r := tr.Admit(3, "2001:db8:1:3::1"); r != Admitted {
		t.Fatalf("another /64: %v", r)
	}
	if r := tr.Admit(4, "192.0.2.1"); r != Admitted {
		t.Fatal(r)
	}
	if r := tr.Admit(5, "192.0.2.2"); r != Admitted {
		t.Fatalf("another IPv4 address: %v", r)
	}
	var f Failures
	f.Add("2001:db8:1:2::1")
	if n := f.Add("2001:db8:1:2::2"); n != 2 {
		t.Fatalf("failures from one /64 counted %d, want 2", n)
	}
	if n := f.Add("::ffff:192.0.2.1"); n != 1 {
		t.Fatalf("an IPv4-mapped address counted %d, want 1", n)
	}
}
