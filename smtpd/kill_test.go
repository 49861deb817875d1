package smtpd

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec/store"
	"github.com/mailsec/mailsec/userdb"
)

// killChildEnv makes this test binary the server process of
// TestKill9DuringDATA; its value is the store directory.
const killChildEnv = "MAILSEC_SMTPD_KILL_CHILD"

// serveForKill runs a server in this process until it is killed, and
// prints its address on stdout.
func serveForKill(dir string) {
	st, err := store.New(dir)
	if err != nil {
		panic(err)
	}
	users, err := userdb.Open(filepath.Join(dir, "users"), &userdb.Options{
		Argon2: userdb.Argon2Params{Time: 1, Memory: 64, Threads: 1}})
	if err != nil {
		panic(err)
	}
	if err := users.Add("alice", "secret"); err != nil {
		panic(err)
	}
	s := &Server{Hostname: "mx.test", Domains: []string{"localhost"}, Backend: Maildir{Store: st},
		Users: users, Limits: Limits{CommandTimeout: time.Minute}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	os.Stdout.WriteString(ln.Addr().String() + "\n")
	s.Serve(ln, MX, TLSMay)
}

// kill -9 in the middle of DATA: the client gets no 250, nothing of the
// cut message is visible to a reader (new/, cur/), and the message
// acknowledged before the kill is there whole.
func TestKill9DuringDATA(t *testing.T) {
	if dir := os.Getenv(killChildEnv); dir != "" {
		serveForKill(dir)
		return
	}
	dir := t.TempDir()
	child := exec.Command(os.Args[0], "-test.run=^TestKill9DuringDATA$")
	child.Env = append(os.Environ(), killChildEnv+"="+dir)
	out, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	e := &testEnv{t: t, addrs: map[Kind]string{MX: strings.TrimSpace(addr)}}

	kept := "Subject: kept\r\n\r\nacknowledged before the kill\r\n"
	a := mxTransaction(e)
	a.cmd("DATA", 354)
	a.send(kept + ".\r\n")
	a.expect(250)

	b := mxTransaction(e)
	b.cmd("DATA", 354)
	b.send("Subject: cut\r\n\r\n" + strings.Repeat("this message never ends\r\n", 40000))
	st, err := store.New(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Kill once the server is writing the cut message, so it dies mid-write.
	for i := 0; ; i++ {
		tmp, _ := os.ReadDir(filepath.Join(dir, "alice", "tmp"))
		if len(tmp) > 0 {
			break
		}
		if i == 500 {
			t.Fatal("the server never started writing the message")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	if code, text := b.read(); code != 0 {
		t.Fatalf("client got %d %q from a killed server", code, text)
	}
	ms, err := st.List("alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 {
		t.Fatalf("%d messages visible after the kill, want only the acknowledged one", len(ms))
	}
	if b, _ := os.ReadFile(ms[0].Path); !strings.HasSuffix(string(b), kept) {
		t.Fatalf("acknowledged message is %q", b)
	}
}
