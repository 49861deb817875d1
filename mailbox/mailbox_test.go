package mailbox

import (
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/mailsec/mailsec"
)

func files(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	return out
}

func TestMaildirDeliver(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m, err := OpenMaildir(dir)
	if err != nil {
		t.Fatal(err)
	}
	wire := "Subject: x\r\n\r\nbare\rCR kept\r\nlast line without end"
	n, err := m.Deliver(iotest.OneByteReader(strings.NewReader(wire)), Origin{})
	if err != nil || n != int64(len(wire)) {
		t.Fatalf("%d %v", n, err)
	}
	got := files(t, filepath.Join(dir, "new"))
	if len(got) != 1 {
		t.Fatalf("new/: %v", got)
	}
	b, _ := os.ReadFile(got[0])
	if string(b) != "Subject: x\n\nbare\rCR kept\nlast line without end" {
		t.Errorf("%q", b)
	}
}

// A download that breaks off (the server closed mid-message) leaves
// nothing in new/ or tmp/, whether the message was held in memory or
// already streaming into tmp/.
func TestMaildirBrokenDownload(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m, _ := OpenMaildir(dir)
	boom := &mailsec.Error{Code: mailsec.SocketRx}
	for _, lines := range []int{10, 50000} {
		_, err := m.Deliver(io.MultiReader(strings.NewReader(strings.Repeat("line\r\n", lines)), iotest.ErrReader(boom)), Origin{})
		if !errors.Is(err, mailsec.SocketRx) {
			t.Fatalf("%d lines: %v", lines, err)
		}
		if f := append(files(t, filepath.Join(dir, "new")), files(t, filepath.Join(dir, "tmp"))...); len(f) != 0 {
			t.Errorf("%d lines: left behind: %v", lines, f)
		}
	}
}

// Messages on both sides of the in-memory limit arrive whole, and their
// names carry the origin, which Delivered reads back for the account
// only, from new/ and from cur/ after a reader added its flags.
func TestMaildirNamesProveDelivery(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	m, _ := OpenMaildir(dir)
	carol, dave := "carol@pop.example", "dave@pop.example"
	big := "Subject: big\r\n\r\n" + strings.Repeat("x", heldMax) + "\r\n"
	for _, d := range []struct {
		o    Origin
		body string
	}{
		{Origin{carol, "a/b:c,d"}, "Subject: 1\r\n\r\n1\r\n"},
		{Origin{carol, "big"}, big},
		{Origin{dave, "a/b:c,d"}, "Subject: 3\r\n\r\n3\r\n"},
		{Origin{carol, ""}, "Subject: 4\r\n\r\n4\r\n"},
	} {
		if n, err := m.Deliver(strings.NewReader(d.body), d.o); err != nil || n != int64(len(d.body)) {
			t.Fatalf("%v: %d %v", d.o, n, err)
		}
	}
	if err := m.Sync(); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for _, f := range files(t, filepath.Join(dir, "new")) {
		b, _ := os.ReadFile(f)
		sizes = append(sizes, len(b))
		if strings.Contains(filepath.Base(f), "U="+base64.RawURLEncoding.EncodeToString([]byte("big"))) {
			// A reader moves it to cur/ and marks it seen.
			os.Rename(f, filepath.Join(dir, "cur", filepath.Base(f)+":2,S"))
		}
	}
	slices.Sort(sizes)
	if want := []int{len("Subject: 1\n\n1\n"), len("Subject: 1\n\n1\n"), len("Subject: 1\n\n1\n"), len(big) - 3}; !slices.Equal(sizes, want) {
		t.Errorf("sizes %v, want %v", sizes, want)
	}
	got, err := m.Delivered(carol)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"a/b:c,d", "big"}) {
		t.Errorf("Delivered(carol) = %q %v", got, err)
	}
	if got, _ := m.Delivered("eve@pop.example"); len(got) != 0 {
		t.Errorf("Delivered(eve) = %q", got)
	}
}

// Files left in tmp/ for more than 36 hours are removed on open; younger
// ones may be a delivery in progress and stay.
func TestMaildirRemovesOrphans(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	OpenMaildir(dir)
	old, young := filepath.Join(dir, "tmp", "old"), filepath.Join(dir, "tmp", "young")
	os.WriteFile(old, []byte("x"), 0o600)
	os.WriteFile(young, []byte("x"), 0o600)
	then := time.Now().Add(-37 * time.Hour)
	os.Chtimes(old, then, then)
	if _, err := OpenMaildir(dir); err != nil {
		t.Fatal(err)
	}
	if got := files(t, filepath.Join(dir, "tmp")); !slices.Equal(got, []string{young}) {
		t.Errorf("tmp/ holds %v", got)
	}
}

func TestMboxQuotingAndLock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "inbox")
	m, err := OpenMbox(path)
	if err != nil {
		t.Fatal(err)
	}
	m.now = func() time.Time { return time.Date(2026, 11, 23, 17, 0, 0, 0, time.UTC) }
	if _, err := OpenMbox(path); !errors.Is(err, mailsec.Timeout) {
		t.Errorf("second open of a locked mbox: %v", err)
	}
	msgs := []string{
		"Return-Path: <a@b.example>\r\nSubject: 1\r\n\r\nFrom here\r\n>From there\r\n",
		"Subject: 2\r\n\r\nno final newline",
	}
	for _, w := range msgs {
		if _, err := m.Deliver(strings.NewReader(w), Origin{}); err != nil {
			t.Fatal(err)
		}
	}
	boom := errors.New("cut")
	if _, err := m.Deliver(io.MultiReader(strings.NewReader("Subject: 3\r\n\r\npartial"), iotest.ErrReader(boom)), Origin{}); !errors.Is(err, boom) {
		t.Fatalf("%v", err)
	}
	m.Close()
	b, _ := os.ReadFile(path)
	want := "From a@b.example Mon Nov 23 17:00:00 2026\nReturn-Path: <a@b.example>\nSubject: 1\n\n>From here\n>>From there\n\n" +
		"From MAILER-DAEMON Mon Nov 23 17:00:00 2026\nSubject: 2\n\nno final newline\n\n"
	if string(b) != want {
		t.Errorf("mbox:\n%q\nwant\n%q", b, want)
	}
}

func TestState(t *testing.T) {
	dir := t.TempDir()
	if path := StatePath(filepath.Join(dir, "Mail") + "/"); path != filepath.Join(dir, "Mail.uidl") {
		t.Fatalf("state path %s", path)
	}
	mb, _ := OpenMaildir(filepath.Join(dir, "Mail"))
	other, err := OpenState(mb, "dave@pop.example")
	if err != nil {
		t.Fatal(err)
	}
	other.Add("x1")
	other.Close()
	s, _ := OpenState(mb, "carol@pop.example")
	for _, u := range []string{"a", "b", "c"} {
		if err := s.Add(u); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Retain(func(u string) bool { return u != "b" }); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenState(mb, "carol@pop.example")
	if err != nil || !s2.Seen("a") || s2.Seen("b") || !s2.Seen("c") || s2.Seen("x1") || s2.Len() != 2 {
		t.Fatalf("reloaded %+v %v", s2, err)
	}
	s2.Close()
	if o, _ := OpenState(mb, "dave@pop.example"); !o.Seen("x1") {
		t.Error("another account's state was lost")
	} else {
		o.Close()
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	if _, err := os.Stat(filepath.Join(dir, "Mail.uidl.journal")); !os.IsNotExist(err) {
		t.Errorf("journal left after Close: %v", err)
	}
	os.WriteFile(StatePath(mb.Path()), []byte("something else\n"), 0o600)
	if _, err := OpenState(mb, "carol@pop.example"); !errors.Is(err, mailsec.Config) {
		t.Errorf("foreign file accepted: %v", err)
	}
}

// Two fetches into one mailbox: the second fails at once with a temporary
// error, and can open the state once the first is done.
func TestStateLocked(t *testing.T) {
	mb, _ := OpenMaildir(filepath.Join(t.TempDir(), "Mail"))
	s, err := OpenState(mb, "carol@pop.example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenState(mb, "dave@pop.example"); !errors.Is(err, mailsec.Timeout) || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("second open: %v", err)
	}
	s.Close()
	s, err = OpenState(mb, "dave@pop.example")
	if err != nil {
		t.Fatalf("open after Close: %v", err)
	}
	s.Close()
}

// FuzzUnixReader checks the CRLF to LF conversion against the obvious
// whole-string one, whatever the read sizes.
func FuzzUnixReader(f *testing.F) {
	f.Add("a\r\nb\rc\n\r\r\n", uint8(1))
	f.Fuzz(func(t *testing.T, in string, mode uint8) {
		var r io.Reader = strings.NewReader(in)
		if mode%2 == 1 {
			r = iotest.OneByteReader(r)
		}
		u := newUnixReader(r)
		got, err := io.ReadAll(iotest.HalfReader(u))
		if err != nil || string(got) != strings.ReplaceAll(in, "\r\n", "\n") || u.n != int64(len(in)) {
			t.Fatalf("%q -> %q (%d) %v", in, got, u.n, err)
		}
	})
}

// crash ends a State the way a killed process does: the lock goes, the
// journal stays as it is.
func crash(s *State) { s.release() }

// An mbox run that crashed leaves its journal, every complete line
// flushed, possibly with a cut last line: the complete records count, the
// cut one does not, and later records are not glued to it.
func TestStateJournalAfterCrash(t *testing.T) {
	mb, err := OpenMbox(filepath.Join(t.TempDir(), "inbox"))
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	path := StatePath(mb.Path())
	s, _ := OpenState(mb, "carol@pop.example")
	s.Add("a")
	s.Add("b")
	crash(s)
	f, _ := os.OpenFile(path+".journal", os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("carol%40pop.example c")
	f.Close()
	s2, err := OpenState(mb, "carol@pop.example")
	if err != nil || !s2.Seen("a") || !s2.Seen("b") || s2.Seen("c") {
		t.Fatalf("after the crash: %+v %v", s2, err)
	}
	s2.Add("d")
	s2.Close()
	s3, err := OpenState(mb, "carol@pop.example")
	if err != nil || !s3.Seen("d") || s3.Len() != 3 {
		t.Fatalf("%+v %v", s3, err)
	}
	s3.Close()
}

// A Maildir run that crashed: records before the last sync mark count;
// those after it may name a message whose rename was lost, so they do not,
// and the names in new/ and cur/ stand in for them.
func TestStateRecoversFromNames(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "Mail")
	mb, _ := OpenMaildir(dir)
	const acct = "carol@pop.example"
	s, _ := OpenState(mb, acct)
	deliver := func(uid string) {
		t.Helper()
		if _, err := mb.Deliver(strings.NewReader("Subject: "+uid+"\r\n\r\nx\r\n"), Origin{acct, uid}); err != nil {
			t.Fatal(err)
		}
	}
	deliver("synced")
	s.Add("synced")
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	deliver("renamed")   // the rename persisted, the record did not
	s.Add("rename-lost") // the record persisted, the rename did not
	mb.Deliver(strings.NewReader("x\r\n"), Origin{"dave@pop.example", "daves"})
	crash(s)
	// A reader moved one message to cur/ before the next run.
	for _, f := range files(t, filepath.Join(dir, "new")) {
		if strings.Contains(f, base64.RawURLEncoding.EncodeToString([]byte("renamed"))) {
			os.Rename(f, filepath.Join(dir, "cur", filepath.Base(f)+":2,S"))
		}
	}
	s2, err := OpenState(mb, acct)
	if err != nil {
		t.Fatal(err)
	}
	if !s2.Seen("synced") || !s2.Seen("renamed") || s2.Seen("rename-lost") || s2.Seen("daves") || s2.Len() != 2 {
		t.Errorf("recovered %v", s2.order)
	}
	// Folded into the state file at once: it holds without the names.
	s2.Close()
	for _, f := range append(files(t, filepath.Join(dir, "new")), files(t, filepath.Join(dir, "cur"))...) {
		os.Remove(f)
	}
	s3, _ := OpenState(mb, acct)
	if !s3.Seen("synced") || !s3.Seen("renamed") || s3.Len() != 2 {
		t.Errorf("after removing the files: %v", s3.order)
	}
	s3.Close()
}

// FuzzOriginName checks that a Maildir name gives back exactly the UIDL it
// was made with, to its account only, whatever a reader appends in cur/,
// and that no name carries a "/" or a second ":".
func FuzzOriginName(f *testing.F) {
	f.Add("carol@pop.example", "1a2b:3c/4d,U=x", "2,S")
	f.Fuzz(func(t *testing.T, account, uid, info string) {
		m := &Maildir{host: "h", pid: "1"}
		name := m.uniqueName(Origin{account, uid})
		if strings.ContainsAny(name, "/:") {
			t.Fatalf("name %q", name)
		}
		want := uid
		if !validUID(uid) {
			want = ""
		}
		if got := originUID(name+":"+info, accountTag(account)); got != want {
			t.Fatalf("%q from %q: got %q, want %q", uid, name, got, want)
		}
		if accountTag(account+"x") != accountTag(account) && originUID(name, accountTag(account+"x")) != "" {
			t.Fatalf("%q read back for another account", uid)
		}
	})
}
