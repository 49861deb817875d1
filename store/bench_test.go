package store

import (
	"strconv"
	"strings"
	"testing"
)

// BenchmarkDeliver compares the raw delivery (hard links for the extra
// mailboxes) with the final delivery (a file per mailbox, for its own
// Delivered-To) of a 64 KiB message, fsyncs included.
func BenchmarkDeliver(b *testing.B) {
	msg := "Subject: bench\r\n\r\n" + strings.Repeat(strings.Repeat("x", 76)+"\r\n", 840)
	for _, n := range []int{1, 10} {
		var users []string
		var d Delivery
		for i := range n {
			u := "u" + strconv.Itoa(i)
			users = append(users, u)
			d.To = append(d.To, LocalRecipient(u, u+"@example.test"))
		}
		for name, deliver := range map[string]func(*Store, *strings.Reader) error{
			"raw":   func(s *Store, r *strings.Reader) error { return s.Deliver(users, r) },
			"final": func(s *Store, r *strings.Reader) error { return s.DeliverMail(d, r) },
		} {
			b.Run(name+"-"+strconv.Itoa(n), func(b *testing.B) {
				s, err := New(b.TempDir())
				if err != nil {
					b.Fatal(err)
				}
				b.SetBytes(int64(len(msg)))
				for b.Loop() {
					if err := deliver(s, strings.NewReader(msg)); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
