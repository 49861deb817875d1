package store

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Message is one file of a Maildir as a reader (a POP3 server) sees it.
type Message struct {
	// Path is the file's full path; open it to read the message.
	Path string
	// Name is the unique part of the file name, stable when the file moves
	// from new/ to cur/ or gains flags: a natural POP3 UIDL (RFC 1939
	// section 7).
	Name string
	// Size is the file size in octets (CRLF line ends, as received).
	Size int64
	// New is true for files still in new/ (never seen by a reader).
	New bool
}

// List returns the messages of user's Maildir (new/ and cur/), oldest
// first by name, which starts with the delivery time. Files in tmp/ are
// never listed: they are deliveries in progress or debris of a crash.
func (s *Store) List(user string) ([]Message, error) {
	dir, err := s.maildir(user)
	if err != nil {
		return nil, err
	}
	type entry struct {
		m   Message
		key time.Time
	}
	var all []entry
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if !e.Type().IsRegular() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			info, err := e.Info()
			if err != nil {
				continue // removed under our feet by another reader
			}
			name, _, _ := strings.Cut(e.Name(), ":")
			m := Message{Path: filepath.Join(dir, sub, e.Name()), Name: name, Size: info.Size(), New: sub == "new"}
			all = append(all, entry{m, deliveryKey(name, info.ModTime())})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].key.Equal(all[j].key) {
			return all[i].key.Before(all[j].key)
		}
		return all[i].m.Name < all[j].m.Name
	})
	out := make([]Message, len(all))
	for i, e := range all {
		out[i] = e.m
	}
	return out, nil
}

// deliveryKey is when a message was delivered: the "<sec>.M<usec>" the
// Maildir specification puts at the start of a name, read as numbers (as
// text, "9" sorts after "10"), or the file's modification time for names
// of another form.
func deliveryKey(name string, mod time.Time) time.Time {
	secs, rest, ok := strings.Cut(name, ".")
	sec, err := strconv.ParseInt(secs, 10, 64)
	if !ok || err != nil {
		return mod
	}
	var usec int64
	if strings.HasPrefix(rest, "M") {
		end := 1
		for end < len(rest) && rest[end] >= '0' && rest[end] <= '9' {
			end++
		}
		usec, _ = strconv.ParseInt(rest[1:end], 10, 64)
	}
	return time.Unix(sec, usec*1000)
}
