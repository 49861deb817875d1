package fetch

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/mailbox"
	"github.com/mailsec/mailsec/pop3"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/tlsconf"
)

// target is where a test fetches into: a Maildir or an mbox path.
type target struct{ maildir, mbox string }

func openTarget(tg target) (mailbox.Mailbox, error) {
	if tg.maildir != "" {
		return mailbox.OpenMaildir(tg.maildir)
	}
	return mailbox.OpenMbox(tg.mbox)
}

// run fetches from the maildrop at addr into tg as carol, the way the
// command does: the state first, then the session.
func run(t *testing.T, addr, ca string, tg target, o *Options) (Result, error) {
	t.Helper()
	mb, err := openTarget(tg)
	if err != nil {
		t.Fatal(err)
	}
	defer mb.Close()
	st, err := mailbox.OpenState(mb, "carol@127.0.0.1")
	if err != nil {
		return Result{}, err
	}
	defer st.Close()
	c, err := pop3.Dial(t.Context(), addr, &pop3.Options{TLSMode: pop3.TLSImplicit,
		TLS:  tlsconf.Options{CAFile: ca, ServerName: "localhost"},
		Auth: &sasl.Credentials{Username: "carol", Password: "pw"}, CommandTimeout: 5 * time.Second})
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	return Run(t.Context(), c, st, o)
}

// The server closing in the middle of a message: nothing of it in new/,
// nothing marked fetched, nothing deleted; the next run gets it.
func TestFetchCutMidMessage(t *testing.T) {
	srv := &wiretest.Maildrop{Msgs: []string{"Subject: 1\r\n\r\none\r\n", "Subject: 2\r\n\r\n" + strings.Repeat("two\r\n", 1000)}, Cut: 2}
	addr, ca := srv.Start(t)
	box := filepath.Join(t.TempDir(), "Mail")
	tg, o := target{maildir: box}, &Options{Delete: true}
	_, err := run(t, addr, ca, tg, o)
	if mailsec.CodeOf(err) != mailsec.SocketRx {
		t.Fatalf("cut message: %v", err)
	}
	if got := wiretest.NewMessages(t, box); len(got) != 1 || got[0] != "Subject: 1\n\none\n" {
		t.Fatalf("new/ after the cut: %q", got)
	}
	if tmp, _ := os.ReadDir(filepath.Join(box, "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ not empty")
	}
	md, _ := mailbox.OpenMaildir(box)
	st, err := mailbox.OpenState(md, "carol@127.0.0.1")
	if err != nil || !st.Seen("uid-1") || st.Seen("uid-2") {
		t.Errorf("state after the cut: uid-1 %v, uid-2 %v, %v", st.Seen("uid-1"), st.Seen("uid-2"), err)
	}
	st.Close()
	if len(srv.Deleted) != 0 {
		t.Errorf("deleted %v without a clean QUIT", srv.Deleted)
	}

	// The second run fetches only message 2, then deletes both.
	srv.Lock()
	srv.Cut = 0
	srv.Unlock()
	res, err := run(t, addr, ca, tg, o)
	if err != nil {
		t.Fatal(err)
	}
	if res.Fetched != 1 || res.Skipped != 1 || res.Deleted != 2 || len(wiretest.NewMessages(t, box)) != 2 {
		t.Errorf("second run %+v", res)
	}
	if fmt.Sprint(srv.Deleted) != "[1 2]" {
		t.Errorf("deleted %v", srv.Deleted)
	}
}

// countingProgress records what a run told its Progress.
type countingProgress struct {
	messages, downloaded int
	octets               int64
}

func (p *countingProgress) Start(messages int, octets int64) { p.messages, p.octets = messages, octets }
func (p *countingProgress) Body(r io.Reader) io.Reader       { return r }
func (p *countingProgress) Downloaded(int)                   { p.downloaded++ }

// A second run with nothing new succeeds and fetches nothing; Limit caps a
// run; All fetches again. Progress hears of what each run downloads.
func TestFetchNothingNew(t *testing.T) {
	srv := &wiretest.Maildrop{Msgs: []string{"A: 1\r\n\r\n.dot\r\n", "A: 2\r\n\r\nx\r\n", "A: 3\r\n\r\ny\r\n"}}
	addr, ca := srv.Start(t)
	box := filepath.Join(t.TempDir(), "Mail")
	for i, want := range []int{2, 1, 0} {
		p := &countingProgress{}
		res, err := run(t, addr, ca, target{maildir: box}, &Options{Limit: 2, Progress: p})
		if err != nil || res.Fetched != want {
			t.Fatalf("run %d: %+v %v", i, res, err)
		}
		if p.messages != want || p.downloaded != want {
			t.Errorf("run %d: progress %+v", i, p)
		}
	}
	if got := wiretest.NewMessages(t, box); len(got) != 3 || got[0] != "A: 1\n\n.dot\n" {
		t.Errorf("%q", got)
	}
	res, err := run(t, addr, ca, target{maildir: box}, &Options{All: true})
	if err != nil || res.Fetched != 3 || srv.Deleted != nil {
		t.Errorf("All: %+v %v", res, err)
	}
}

// crashMessages are the maildrop of the crash tests: message 3 is larger
// than what a Maildir holds in memory, so it streams into tmp/.
func crashMessages() []string {
	var msgs []string
	for i := 1; i <= 6; i++ {
		body := "line\r\n"
		if i == 3 {
			body = strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 3000)
		}
		msgs = append(msgs, fmt.Sprintf("Subject: %d\r\n\r\n%s", i, body))
	}
	return msgs
}

// TestFetchCrashChild is the fetch that TestFetchCrash kills: it runs only
// in the child process started there, and kills itself at the step named
// in MAILSEC_TEST_CRASH ("step:num").
func TestFetchCrashChild(t *testing.T) {
	at := os.Getenv("MAILSEC_TEST_CRASH")
	if at == "" {
		t.Skip("the child of TestFetchCrash")
	}
	name, n, _ := strings.Cut(at, ":")
	num, _ := strconv.Atoi(n)
	o := &Options{Delete: true, step: func(step string, i int) {
		if step == name && i == num {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}}
	tg := target{maildir: os.Getenv("MAILSEC_TEST_MAILDIR"), mbox: os.Getenv("MAILSEC_TEST_MBOX")}
	_, err := run(t, os.Getenv("MAILSEC_TEST_ADDR"), os.Getenv("MAILSEC_TEST_CA"), tg, o)
	t.Logf("the fetch was not killed: %v", err)
}

// crashFetch runs a fetch --delete into tg in a child process killed at step.
func crashFetch(t *testing.T, addr, ca, step string, tg target) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFetchCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), "MAILSEC_TEST_CRASH="+step, "MAILSEC_TEST_ADDR="+addr,
		"MAILSEC_TEST_CA="+ca, "MAILSEC_TEST_MAILDIR="+tg.maildir, "MAILSEC_TEST_MBOX="+tg.mbox)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed at %s: %v\n%s", step, err, out)
	}
}

// powerLoss turns what a killed process left into what a power cut could
// leave: "journal" drops the journal lines written after its last sync mark
// (never flushed), "renames" moves back into tmp/ every file whose rename
// into new/ no flushed record vouches for (new/ not flushed since), "both"
// does both, "none" neither.
func powerLoss(t *testing.T, box, loss string) {
	t.Helper()
	state, _ := os.ReadFile(mailbox.StatePath(box))
	journal, _ := os.ReadFile(mailbox.StatePath(box) + ".journal")
	synced := string(journal)
	if i := strings.LastIndex(synced, "#synced\n"); i >= 0 {
		synced = synced[:i+len("#synced\n")]
	} else {
		synced = ""
	}
	if loss == "journal" || loss == "both" {
		if err := os.WriteFile(mailbox.StatePath(box)+".journal", []byte(synced), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if loss != "renames" && loss != "both" {
		return
	}
	durable := string(state) + synced
	ents, _ := os.ReadDir(filepath.Join(box, "new"))
	for _, e := range ents {
		_, u, _ := strings.Cut(e.Name(), ",U=")
		uid, _ := base64.RawURLEncoding.DecodeString(u)
		if !strings.Contains(durable, " "+string(uid)+"\n") {
			os.Rename(filepath.Join(box, "new", e.Name()), filepath.Join(box, "tmp", e.Name()))
		}
	}
}

// A fetch with Delete killed at each step of a delivery, and after what a
// power cut at that moment could have lost, followed by a fetch that runs
// to the end: every message ends up in the Maildir exactly once, none is
// left on the server, none is lost.
func TestFetchCrash(t *testing.T) {
	msgs := crashMessages()
	var want []string
	for _, m := range msgs {
		want = append(want, strings.ReplaceAll(m, "\r\n", "\n"))
	}
	for _, at := range []string{"staged:2", "staged:3", "renamed:2", "renamed:3", "recorded:2", "synced:0", "deleted:0", "quit:0"} {
		for _, loss := range []string{"none", "journal", "renames", "both"} {
			t.Run(at+"/"+loss, func(t *testing.T) {
				srv := &wiretest.Maildrop{Msgs: msgs}
				addr, ca := srv.Start(t)
				tg := target{maildir: filepath.Join(t.TempDir(), "Mail")}
				crashFetch(t, addr, ca, at, tg)
				powerLoss(t, tg.maildir, loss)
				if _, err := run(t, addr, ca, tg, &Options{Delete: true}); err != nil {
					t.Fatal(err)
				}
				got := wiretest.NewMessages(t, tg.maildir)
				ents, _ := os.ReadDir(filepath.Join(tg.maildir, "cur"))
				if len(ents) != 0 {
					t.Fatalf("cur/ is not empty")
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("Maildir holds %d messages, want each of %d once: %.40q", len(got), len(want), got)
				}
				if left := srv.Left(); len(left) != 0 {
					t.Errorf("left on the server: %v", left)
				}
			})
		}
	}
}

// The same for an mbox, which has no names to prove a delivery: the one
// message delivered but not yet recorded when the process died comes again,
// no other does, and none is lost.
func TestFetchCrashMbox(t *testing.T) {
	msgs := crashMessages()
	for _, at := range []string{"delivered:2", "recorded:2", "synced:0", "deleted:0", "quit:0"} {
		t.Run(at, func(t *testing.T) {
			srv := &wiretest.Maildrop{Msgs: msgs}
			addr, ca := srv.Start(t)
			tg := target{mbox: filepath.Join(t.TempDir(), "inbox")}
			crashFetch(t, addr, ca, at, tg)
			if _, err := run(t, addr, ca, tg, &Options{Delete: true}); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(tg.mbox)
			for i := range msgs {
				switch n := strings.Count(string(b), fmt.Sprintf("\nSubject: %d\n", i+1)); {
				case n == 2 && at == "delivered:2" && i == 1:
					// The one message delivered but not recorded.
				case n != 1:
					t.Errorf("message %d is in the mbox %d times", i+1, n)
				}
			}
			if left := srv.Left(); len(left) != 0 {
				t.Errorf("left on the server: %v", left)
			}
		})
	}
}

// A server that gives a new message the UIDL of one already fetched (RFC
// 1939 section 7 says a unique-id identifies one message) must not make a
// fetch with Delete take the new one for fetched and delete it unread.
func TestFetchDuplicateUIDLDeletesNothing(t *testing.T) {
	srv := &wiretest.Maildrop{Msgs: []string{"A: 1\r\n\r\nold\r\n"}, UIDs: []string{"dup", "dup"}}
	addr, ca := srv.Start(t)
	tg := target{maildir: filepath.Join(t.TempDir(), "Mail")}
	if _, err := run(t, addr, ca, tg, nil); err != nil {
		t.Fatal(err)
	}
	srv.Lock()
	srv.Msgs = append(srv.Msgs, "A: 2\r\n\r\nnew\r\n")
	srv.Unlock()
	_, err := run(t, addr, ca, tg, &Options{Delete: true})
	if mailsec.CodeOf(err) != mailsec.Protocol {
		t.Fatalf("error %v, want a Protocol error", err)
	}
	if left := srv.Left(); len(left) != 2 {
		t.Fatalf("messages left on the server %v: the unread one was deleted", left)
	}
}

// A message longer than its LIST size allows (RFC 1939 section 11: the
// exact size) is refused whole: an endless body must not fill the disk.
// Servers that count LF line ends as one octet still get through.
func TestFetchBodyBeyondListedSize(t *testing.T) {
	lines := "A: 1\r\n\r\n" + strings.Repeat("\r\n", 50000)
	srv := &wiretest.Maildrop{Msgs: []string{lines, "A: 2\r\n\r\n" + strings.Repeat("x", 200<<10) + "\r\n"},
		Listed: []int{len(lines) / 2, 100}}
	addr, ca := srv.Start(t)
	box := filepath.Join(t.TempDir(), "Mail")
	res, err := run(t, addr, ca, target{maildir: box}, &Options{Delete: true})
	if mailsec.CodeOf(err) != mailsec.Protocol || !strings.Contains(err.Error(), "LIST gave it 100") {
		t.Fatalf("error %v, want a Protocol error", err)
	}
	if got := wiretest.NewMessages(t, box); len(got) != 1 || res.Fetched != 1 {
		t.Fatalf("%d messages kept, %d fetched; want only the first", len(got), res.Fetched)
	}
	if left := srv.Left(); len(left) != 2 {
		t.Fatalf("messages left on the server %v", left)
	}
}
