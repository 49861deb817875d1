package store

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
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
	var out []Message
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
			out = append(out, Message{Path: filepath.Join(dir, sub, e.Name()), Name: name, Size: info.Size(), New: sub == "new"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
