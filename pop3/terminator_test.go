package pop3

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/mailbox"
)

// Only CRLF "." CRLF ends a multi-line response (RFC 1939 section 3). A
// "." between bare LFs is data: a reader that took it for the end would
// truncate the message and read its rest as the next replies.

// lfDot is a message as the server stores it, with a "." line between bare
// LFs, a dot after a bare LF that must not be unstuffed, and a stuffed
// line; lfDotWire is it on the wire, stuffed after CRLF only.
const (
	lfDot     = "Subject: lf\r\n\r\nbefore\n.\nafter\n..two\r\n.real dot\r\nlast\n.\r\n\r\nend\r\n"
	lfDotWire = "Subject: lf\r\n\r\nbefore\n.\nafter\n..two\r\n..real dot\r\nlast\n.\r\n\r\nend\r\n.\r\n"
)

// loginImplicit opens a POP3S session with USER/PASS, closed when the test
// ends.
func loginImplicit(t *testing.T, addr string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), addr, opts(Options{TLSMode: TLSImplicit, Auth: carol, Mechanism: "user"}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestBareLFDotIsData(t *testing.T) {
	for _, op := range []string{"RETR 1", "TOP 1 100"} {
		t.Run(op, func(t *testing.T) {
			addr := scripted(t, true, func(s *wiretest.Peer) {
				loginTLS(s, "USER", "TOP")
				s.Expect(op)
				s.Send("+OK\r\n" + lfDotWire)
				s.Expect("NOOP")
				s.Send("+OK\r\n")
				s.Expect("QUIT")
				s.Send("+OK\r\n")
			})
			ctx := context.Background()
			c := loginImplicit(t, addr)
			var b *Body
			var err error
			if op == "RETR 1" {
				b, err = c.Retr(ctx, 1)
			} else {
				b, err = c.Top(ctx, 1, 100)
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(b)
			if err != nil || string(got) != lfDot {
				t.Fatalf("body %q (%v), want %q", got, err, lfDot)
			}
			// The session is still in step: the next reply is NOOP's.
			if err := c.Noop(ctx); err != nil {
				t.Fatal(err)
			}
			if err := c.Quit(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The fetch path: pipelined RETRs streamed into a Maildir. Each file is
// what the server sent, unstuffed, with CRLF made LF; the message after
// the bare-LF dot arrives whole too.
func TestBareLFDotReachesMaildirWhole(t *testing.T) {
	second := "Subject: two\r\n\r\nsecond\r\n"
	addr := scripted(t, true, func(s *wiretest.Peer) {
		loginTLS(s, "USER", "PIPELINING")
		s.Expect("RETR 1")
		s.Expect("RETR 2")
		s.Send("+OK\r\n" + lfDotWire + "+OK\r\n" + second + ".\r\n")
		s.Expect("QUIT")
		s.Send("+OK\r\n")
	})
	ctx := context.Background()
	c := loginImplicit(t, addr)
	box := filepath.Join(t.TempDir(), "Mail")
	md, err := mailbox.OpenMaildir(box)
	if err != nil {
		t.Fatal(err)
	}
	uids := []string{"a", "b"}
	err = c.RetrEach(ctx, []int{1, 2}, func(num int, body io.Reader, err error) error {
		if err != nil {
			return err
		}
		_, err = md.Deliver(body, mailbox.Origin{Account: "carol", UID: uids[num-1]})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{strings.ReplaceAll(lfDot, "\r\n", "\n"): true, strings.ReplaceAll(second, "\r\n", "\n"): true}
	ents, _ := os.ReadDir(filepath.Join(box, "new"))
	if len(ents) != 2 {
		t.Fatalf("%d files in new/, want 2", len(ents))
	}
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(box, "new", e.Name()))
		if !want[string(b)] {
			t.Errorf("Maildir file %q is not what the server sent", b)
		}
		delete(want, string(b))
	}
}
