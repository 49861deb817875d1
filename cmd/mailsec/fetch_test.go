package main

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/mailbox"
)

// popServer is a small scripted POP3S maildrop for fetch tests. Message i
// (from 1) has the UIDL "uid-i" for good; a QUIT after DELE removes
// messages as RFC 1939 section 6 says, and later sessions number the rest
// from 1. cut makes it close the connection in the middle of that message
// number.
type popServer struct {
	mu      sync.Mutex
	msgs    []string // wire form, CRLF
	uids    []string // UIDLs by message number from 1, replacing "uid-i" when set
	listed  []int    // LIST sizes by message number from 1, replacing the true ones when set
	cut     int
	deleted []int // message numbers as first given, in the order removed
	quits   int
}

// left returns the message numbers still in the maildrop.
func (p *popServer) left() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []int
	for i := range p.msgs {
		if !slices.Contains(p.deleted, i+1) {
			out = append(out, i+1)
		}
	}
	return out
}

func (p *popServer) start(t *testing.T) (addr, caFile string) {
	t.Helper()
	cert, _ := wiretest.SelfSigned(t, "localhost")
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o600)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.session(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), caFile
}

func (p *popServer) session(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	out := func(s string) { w.WriteString(s + "\r\n"); w.Flush() }
	out("+OK test maildrop")
	var marked []int
	live := p.left() // RFC 1939 section 8: the maildrop is locked for the session
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		f := strings.Fields(line)
		n := 0
		if len(f) > 1 {
			n, _ = strconv.Atoi(f[1])
		}
		if n > len(live) {
			out("-ERR no such message")
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "CAPA":
			out("+OK\r\nUSER\r\nUIDL\r\nPIPELINING\r\nSASL PLAIN\r\n.")
		case "AUTH", "USER", "PASS":
			out("+OK")
		case "LIST", "UIDL":
			var b strings.Builder
			b.WriteString("+OK\r\n")
			for i, num := range live {
				if f[0] == "LIST" {
					size := len(p.msgs[num-1])
					if p.listed != nil {
						size = p.listed[num-1]
					}
					fmt.Fprintf(&b, "%d %d\r\n", i+1, size)
				} else {
					uid := "uid-" + strconv.Itoa(num)
					if p.uids != nil {
						uid = p.uids[num-1]
					}
					fmt.Fprintf(&b, "%d %s\r\n", i+1, uid)
				}
			}
			out(b.String() + ".")
		case "RETR":
			m := strings.ReplaceAll(p.msgs[live[n-1]-1], "\r\n.", "\r\n..")
			p.mu.Lock()
			cut := live[n-1] == p.cut
			p.mu.Unlock()
			if cut {
				w.WriteString("+OK\r\n" + m[:len(m)/2])
				w.Flush()
				return
			}
			out("+OK\r\n" + m + ".")
		case "DELE":
			marked = append(marked, live[n-1])
			out("+OK")
		case "QUIT":
			// RFC 1939 section 6: deletions happen only now.
			p.mu.Lock()
			p.deleted = append(p.deleted, marked...)
			p.quits++
			p.mu.Unlock()
			out("+OK")
			return
		default:
			out("-ERR unknown")
		}
	}
}

func fetchFlags(t *testing.T, addr, ca string, args ...string) (*connFlags, *fetchSpec) {
	t.Helper()
	t.Setenv("MAILSEC_PASSWORD", "pw")
	var cf connFlags
	var spec fetchSpec
	fs := pflag.NewFlagSet("fetch", pflag.ContinueOnError)
	cf.register(fs, "995")
	spec.register(fs)
	all := append([]string{"--server", addr, "--tls", "implicit", "--user", "carol", "--ca-file", ca,
		"--tls-server-name", "localhost", "--timeout", "5s"}, args...)
	if err := fs.Parse(all); err != nil {
		t.Fatal(err)
	}
	return &cf, &spec
}

func newFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(dir, "new"))
	var out []string
	for _, e := range ents {
		b, _ := os.ReadFile(filepath.Join(dir, "new", e.Name()))
		out = append(out, string(b))
	}
	return out
}

// The server closing in the middle of a message: nothing of it in new/,
// nothing marked fetched, nothing deleted; the next run gets it.
func TestFetchCutMidMessage(t *testing.T) {
	srv := &popServer{msgs: []string{"Subject: 1\r\n\r\none\r\n", "Subject: 2\r\n\r\n" + strings.Repeat("two\r\n", 1000)}, cut: 2}
	addr, ca := srv.start(t)
	box := filepath.Join(t.TempDir(), "Mail")
	cf, spec := fetchFlags(t, addr, ca, "--maildir", box, "--delete")
	err := runFetch(t.Context(), cf, spec, &fetchResult{})
	if mailsec.CodeOf(err) != mailsec.SocketRx {
		t.Fatalf("cut message: %v", err)
	}
	if got := newFiles(t, box); len(got) != 1 || got[0] != "Subject: 1\n\none\n" {
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
	if len(srv.deleted) != 0 {
		t.Errorf("deleted %v without a clean QUIT", srv.deleted)
	}

	// The second run fetches only message 2, then deletes both.
	srv.mu.Lock()
	srv.cut = 0
	srv.mu.Unlock()
	res := &fetchResult{}
	if err := runFetch(t.Context(), cf, spec, res); err != nil {
		t.Fatal(err)
	}
	if res.Fetched != 1 || res.Skipped != 1 || res.Deleted != 2 || len(newFiles(t, box)) != 2 {
		t.Errorf("second run %+v", res)
	}
	if fmt.Sprint(srv.deleted) != "[1 2]" {
		t.Errorf("deleted %v", srv.deleted)
	}
}

// A second run with nothing new succeeds (exit 0) and fetches nothing;
// --limit caps a run; --all fetches again.
func TestFetchNothingNew(t *testing.T) {
	srv := &popServer{msgs: []string{"A: 1\r\n\r\n.dot\r\n", "A: 2\r\n\r\nx\r\n", "A: 3\r\n\r\ny\r\n"}}
	addr, ca := srv.start(t)
	box := filepath.Join(t.TempDir(), "Mail")
	cf, spec := fetchFlags(t, addr, ca, "--maildir", box, "--limit", "2")
	for i, want := range []int{2, 1, 0} {
		res := &fetchResult{}
		err := runFetch(t.Context(), cf, spec, res)
		if err != nil || res.Fetched != want || exitCode(err) != 0 {
			t.Fatalf("run %d: %+v %v", i, res, err)
		}
	}
	if got := newFiles(t, box); len(got) != 3 || got[0] != "A: 1\n\n.dot\n" {
		t.Errorf("%q", got)
	}
	cf, spec = fetchFlags(t, addr, ca, "--maildir", box, "--all")
	res := &fetchResult{}
	if err := runFetch(t.Context(), cf, spec, res); err != nil || res.Fetched != 3 || srv.deleted != nil {
		t.Errorf("--all: %+v %v", res, err)
	}
}

// Two fetches into one mailbox: the second fails at once with exit status
// 75 (temporary failure), before it even connects.
func TestFetchLocked(t *testing.T) {
	srv := &popServer{msgs: []string{"A: 1\r\n\r\nx\r\n"}}
	addr, ca := srv.start(t)
	box := filepath.Join(t.TempDir(), "Mail")
	md, _ := mailbox.OpenMaildir(box)
	first, err := mailbox.OpenState(md, "carol@127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	cf, spec := fetchFlags(t, addr, ca, "--maildir", box)
	err = runFetch(t.Context(), cf, spec, &fetchResult{})
	if exitCode(err) != exitTempFail || !strings.Contains(err.Error(), "lock") {
		t.Fatalf("second fetch: exit %d, %v", exitCode(err), err)
	}
	if got := newFiles(t, box); len(got) != 0 || srv.quits != 0 {
		t.Errorf("the locked-out fetch went on: %q, %d sessions", got, srv.quits)
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
	crashHook = func(step string, i int) {
		if step == name && i == num {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
		}
	}
	cf, spec := fetchFlags(t, os.Getenv("MAILSEC_TEST_ADDR"), os.Getenv("MAILSEC_TEST_CA"),
		strings.Fields(os.Getenv("MAILSEC_TEST_ARGS"))...)
	t.Logf("the fetch was not killed: %v", runFetch(t.Context(), cf, spec, &fetchResult{}))
}

// crashFetch runs a fetch with args in a child process killed at step.
func crashFetch(t *testing.T, addr, ca, step string, args ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFetchCrashChild$", "-test.v")
	cmd.Env = append(os.Environ(), "MAILSEC_TEST_CRASH="+step, "MAILSEC_TEST_ADDR="+addr,
		"MAILSEC_TEST_CA="+ca, "MAILSEC_TEST_ARGS="+strings.Join(args, " "))
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

// A fetch with --delete killed at each step of a delivery, and after what a
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
				srv := &popServer{msgs: msgs}
				addr, ca := srv.start(t)
				box := filepath.Join(t.TempDir(), "Mail")
				crashFetch(t, addr, ca, at, "--maildir", box, "--delete")
				powerLoss(t, box, loss)
				cf, spec := fetchFlags(t, addr, ca, "--maildir", box, "--delete")
				if err := runFetch(t.Context(), cf, spec, &fetchResult{}); err != nil {
					t.Fatal(err)
				}
				got := newFiles(t, box)
				ents, _ := os.ReadDir(filepath.Join(box, "cur"))
				if len(ents) != 0 {
					t.Fatalf("cur/ is not empty")
				}
				slices.Sort(got)
				if !slices.Equal(got, want) {
					t.Errorf("Maildir holds %d messages, want each of %d once: %.40q", len(got), len(want), got)
				}
				if left := srv.left(); len(left) != 0 {
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
			srv := &popServer{msgs: msgs}
			addr, ca := srv.start(t)
			mbox := filepath.Join(t.TempDir(), "inbox")
			crashFetch(t, addr, ca, at, "--mbox", mbox, "--delete")
			cf, spec := fetchFlags(t, addr, ca, "--mbox", mbox, "--delete")
			if err := runFetch(t.Context(), cf, spec, &fetchResult{}); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(mbox)
			for i := range msgs {
				switch n := strings.Count(string(b), fmt.Sprintf("\nSubject: %d\n", i+1)); {
				case n == 2 && at == "delivered:2" && i == 1:
					// The one message delivered but not recorded.
				case n != 1:
					t.Errorf("message %d is in the mbox %d times", i+1, n)
				}
			}
			if left := srv.left(); len(left) != 0 {
				t.Errorf("left on the server: %v", left)
			}
		})
	}
}

// A server that gives a new message the UIDL of one already fetched (RFC
// 1939 section 7 says a unique-id identifies one message) must not make
// fetch --delete take the new one for fetched and delete it unread.
func TestFetchDuplicateUIDLDeletesNothing(t *testing.T) {
	srv := &popServer{msgs: []string{"A: 1\r\n\r\nold\r\n"}, uids: []string{"dup", "dup"}}
	addr, ca := srv.start(t)
	box := filepath.Join(t.TempDir(), "Mail")
	cf, spec := fetchFlags(t, addr, ca, "--maildir", box)
	if err := runFetch(t.Context(), cf, spec, &fetchResult{}); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	srv.msgs = append(srv.msgs, "A: 2\r\n\r\nnew\r\n")
	srv.mu.Unlock()
	cf, spec = fetchFlags(t, addr, ca, "--maildir", box, "--delete")
	err := runFetch(t.Context(), cf, spec, &fetchResult{})
	if mailsec.CodeOf(err) != mailsec.Protocol || exitCode(err) != exitProtocol {
		t.Fatalf("error %v (exit %d), want a Protocol error", err, exitCode(err))
	}
	if left := srv.left(); len(left) != 2 {
		t.Fatalf("messages left on the server %v: the unread one was deleted", left)
	}
}

// A message longer than its LIST size allows (RFC 1939 section 11: the
// exact size) is refused whole: an endless body must not fill the disk.
// Servers that count LF line ends as one octet still get through.
func TestFetchBodyBeyondListedSize(t *testing.T) {
	lines := "A: 1\r\n\r\n" + strings.Repeat("\r\n", 50000)
	srv := &popServer{msgs: []string{lines, "A: 2\r\n\r\n" + strings.Repeat("x", 200<<10) + "\r\n"},
		listed: []int{len(lines) / 2, 100}}
	addr, ca := srv.start(t)
	box := filepath.Join(t.TempDir(), "Mail")
	cf, spec := fetchFlags(t, addr, ca, "--maildir", box, "--delete")
	res := &fetchResult{}
	err := runFetch(t.Context(), cf, spec, res)
	if mailsec.CodeOf(err) != mailsec.Protocol || !strings.Contains(err.Error(), "LIST gave it 100") {
		t.Fatalf("error %v, want a Protocol error", err)
	}
	if got := newFiles(t, box); len(got) != 1 || res.Fetched != 1 {
		t.Fatalf("%d messages kept, %d fetched; want only the first", len(got), res.Fetched)
	}
	if left := srv.left(); len(left) != 2 {
		t.Fatalf("messages left on the server %v", left)
	}
}
