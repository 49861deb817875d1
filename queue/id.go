package queue

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"sync/atomic"
	"time"
)

// idEncoding is base32 in the order of its digits, so that IDs sort as
// their times do; lower case and unpadded, so that IDs pass ValidID.
var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// IDSource makes the IDs of one queue (or one node of a shared one): 8
// bytes of time, strictly increasing within the source, then 8 random
// bytes, which keep IDs unique across processes and nodes whatever their
// clocks. The zero value is ready for use and safe for concurrent use.
type IDSource struct{ last atomic.Int64 }

// Next returns a new ID and the time it encodes.
func (s *IDSource) Next() (ID, time.Time) {
	now := time.Now().UnixNano()
	for {
		last := s.last.Load()
		if now <= last {
			now = last + 1
		}
		if s.last.CompareAndSwap(last, now) {
			break
		}
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now))
	rand.Read(b[8:])
	return ID(idEncoding.EncodeToString(b[:])), time.Unix(0, now)
}
