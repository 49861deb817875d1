package store

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDeliverManyMailboxes(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	msg := "Subject: x\r\n\r\nbody\r\n"
	if err := s.Deliver([]string{"alice", "bob"}, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"alice", "bob"} {
		ms, err := s.List(u)
		if err != nil || len(ms) != 1 || !ms[0].New || ms[0].Size != int64(len(msg)) {
			t.Fatalf("%s: %+v %v", u, ms, err)
		}
		b, _ := os.ReadFile(ms[0].Path)
		if string(b) != msg {
			t.Errorf("%s: %q", u, b)
		}
		if fi, _ := os.Stat(ms[0].Path); fi.Mode().Perm() != 0o600 {
			t.Errorf("mode %v", fi.Mode())
		}
		tmp, _ := os.ReadDir(filepath.Join(s.Root(), u, "tmp"))
		if len(tmp) != 0 {
			t.Errorf("%s: tmp not empty", u)
		}
	}
}

// A reader failing midway (the SMTP layer refusing the message, or the
// client vanishing) leaves nothing in new/ or tmp/.
func TestDeliverAbortLeavesNothing(t *testing.T) {
	s, _ := New(t.TempDir())
	boom := errors.New("refused")
	r := io.MultiReader(strings.NewReader(strings.Repeat("x", 1<<20)), errReader{boom})
	if err := s.Deliver([]string{"alice", "bob"}, r); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	for _, u := range []string{"alice", "bob"} {
		for _, sub := range []string{"tmp", "new", "cur"} {
			ents, _ := os.ReadDir(filepath.Join(s.Root(), u, sub))
			if len(ents) != 0 {
				t.Errorf("%s/%s: %d files", u, sub, len(ents))
			}
		}
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestPathTraversal(t *testing.T) {
	s, _ := New(t.TempDir())
	for _, u := range []string{"", ".", "..", "../x", "a/b"} {
		if err := s.Deliver([]string{u}, strings.NewReader("x")); err == nil {
			t.Errorf("delivered to %q", u)
		}
	}
}

func TestLock(t *testing.T) {
	s, _ := New(t.TempDir())
	unlock, err := s.Lock("alice")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lock("alice"); !errors.Is(err, ErrLocked) {
		t.Errorf("second lock: %v", err)
	}
	unlock()
	u2, err := s.Lock("alice")
	if err != nil {
		t.Fatal(err)
	}
	u2()
}

func TestUniqueNames(t *testing.T) {
	n := newNamer()
	seen := map[string]bool{}
	for i := 0; i < 10000; i++ {
		name := n.next()
		if seen[name] || strings.ContainsAny(name, "/:") {
			t.Fatalf("bad or duplicate name %q", name)
		}
		seen[name] = true
	}
}

// List orders by delivery time read as numbers: names written by other
// deliverers may have unpadded microseconds, and "M9" is later than "M10"
// as text but not in time. Names of another form go by modification time.
func TestListDeliveryOrder(t *testing.T) {
	s, err := New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver([]string{"alice"}, strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(s.Root(), "alice")
	for _, n := range []string{"new/1700000000.M10P1Q2.host", "new/1700000000.M9P1Q1.host", "cur/999999999.M5P1.host:2,S", "new/1700000001.M1P1.host"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x\r\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := s.List("alice")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range ms[:4] {
		got = append(got, m.Name)
	}
	want := "999999999.M5P1.host 1700000000.M9P1Q1.host 1700000000.M10P1Q2.host 1700000001.M1P1.host"
	if strings.Join(got, " ") != want {
		t.Fatalf("order %q, want %q", got, want)
	}
	if len(ms) != 5 || !strings.Contains(ms[4].Name, ".M") || len(strings.SplitN(strings.SplitN(ms[4].Name, ".M", 2)[1], "P", 2)[0]) != 6 {
		t.Fatalf("the store's own name %v: want the newest last, with six microsecond digits", ms[4].Name)
	}
}

// The final delivery begins each copy with its own Return-Path and
// Delivered-To; the rest is the message byte for byte, streamed once.
func TestDeliverMail(t *testing.T) {
	s, _ := New(t.TempDir())
	msg := "Received: from a by b; Thu, 03 Dec 2026 15:00:00 +0000\r\nSubject: x\r\n\r\n" + strings.Repeat("body line\r\n", 50000)
	d := Delivery{From: "carol@far.test", To: []Recipient{LocalRecipient("alice", "Alice@Local.TEST"), LocalRecipient("bob", "bob@other.test")}}
	if err := s.DeliverMail(d, strings.NewReader(msg)); err != nil {
		t.Fatal(err)
	}
	for u, to := range map[string]string{"alice": "alice@local.test", "bob": "bob@other.test"} {
		ms, err := s.List(u)
		if err != nil || len(ms) != 1 {
			t.Fatalf("%s: %+v %v", u, ms, err)
		}
		b, _ := os.ReadFile(ms[0].Path)
		if want := "Return-Path: <carol@far.test>\r\nDelivered-To: " + to + "\r\n" + msg; string(b) != want {
			t.Errorf("%s: %d octets, begins %q", u, len(b), b[:min(len(b), 120)])
		}
		tmp, _ := os.ReadDir(filepath.Join(s.Root(), u, "tmp"))
		if len(tmp) != 0 {
			t.Errorf("%s: tmp not empty", u)
		}
	}
	if err := s.DeliverMail(Delivery{To: []Recipient{{Mailbox: "alice", Addr: "alice@x"}}}, strings.NewReader("x\r\n")); err != nil {
		t.Fatal(err)
	}
	ms, _ := s.List("alice")
	var nullSender bool
	for _, m := range ms {
		b, _ := os.ReadFile(m.Path)
		nullSender = nullSender || strings.HasPrefix(string(b), "Return-Path: <>\r\nDelivered-To: alice@x\r\nx\r\n")
	}
	if !nullSender {
		t.Error("the null sender is not Return-Path: <>")
	}
}

// An envelope address that would end the header field is refused before
// anything is written, and a failing reader leaves no copy behind.
func TestDeliverMailRefuses(t *testing.T) {
	s, _ := New(t.TempDir())
	for _, d := range []Delivery{
		{From: "a@b>\r\nX-Evil: 1", To: []Recipient{{Mailbox: "alice", Addr: "alice@x"}}},
		{From: "a@b", To: []Recipient{{Mailbox: "alice", Addr: "alice@x\nX-Evil: 1"}}},
		{From: "a@b"},
	} {
		if err := s.DeliverMail(d, strings.NewReader("x\r\n")); err == nil {
			t.Errorf("%+v delivered", d)
		}
	}
	boom := errors.New("refused")
	d := Delivery{From: "a@b", To: []Recipient{{Mailbox: "alice", Addr: "alice@x"}, {Mailbox: "bob", Addr: "bob@x"}}}
	if err := s.DeliverMail(d, io.MultiReader(strings.NewReader("x\r\n"), errReader{boom})); !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
	for _, u := range []string{"alice", "bob"} {
		if ms, _ := s.List(u); len(ms) != 0 {
			t.Errorf("%s: %d messages", u, len(ms))
		}
	}
}

// WriteFile replaces a file whole, private to its owner, and leaves no
// temporary file behind, on success or on failure.
func TestWriteFileReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state")
	for _, data := range []string{"first", "second, longer than the first"} {
		if err := WriteFile(path, []byte(data)); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != data {
			t.Errorf("read %q, want %q", got, data)
		}
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	if err := WriteFile(filepath.Join(dir, "missing", "x"), []byte("x")); err == nil {
		t.Error("wrote into a directory that does not exist")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only the file", len(ents))
	}
}
