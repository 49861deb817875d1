package main

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
)

// Not on a terminal (cron, a pipe), a missing secret is a configuration
// error at once (exit 78), and nothing is written asking for it.
func TestNoPromptOffTerminal(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	_, _, err = promptSecret(r, w, "alice", "")
	if mailsec.CodeOf(err) != mailsec.Config || exitCode(err) != exitConfig || !strings.Contains(err.Error(), "MAILSEC_PASSWORD") {
		t.Fatalf("error %v (exit %d)", err, exitCode(err))
	}
	w.Close()
	var buf bytes.Buffer
	buf.ReadFrom(r)
	if buf.Len() != 0 {
		t.Errorf("prompted off a terminal: %q", buf.String())
	}
}

// openPTY opens a pseudo-terminal pair (pty(7)), or skips the test where
// the system has none.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	var unlock int32
	var n uint32
	if err := ioctl(m, syscall.TIOCSPTLCK, unsafe.Pointer(&unlock)); err != nil {
		t.Skipf("unlockpt: %v", err)
	}
	if err := ioctl(m, syscall.TIOCGPTN, unsafe.Pointer(&n)); err != nil {
		t.Skipf("ptsname: %v", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("open the pty's slave: %v", err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	return m, s
}

func ioctl(f *os.File, req uint, arg unsafe.Pointer) error {
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), uintptr(req), uintptr(arg)); e != 0 {
		return e
	}
	return nil
}

// echoOff reports whether the terminal f echoes no input.
func echoOff(f *os.File) bool {
	var tio syscall.Termios
	return ioctl(f, syscall.TCGETS, unsafe.Pointer(&tio)) == nil && tio.Lflag&syscall.ECHO == 0
}

// smtpLogin plays an SMTP server that takes one AUTH PLAIN under
// STARTTLS; auth returns the AUTH line once the session ended.
func smtpLogin(t *testing.T) (addr, ca string, auth func() string) {
	var line string
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		startTLS(p)
		p.Send("250-test\r\n250 AUTH PLAIN\r\n")
		line = p.Expect("AUTH PLAIN")
		p.Send("235 2.7.0 ok\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	return addr, wiretestCA(t), func() string { <-done; return line }
}

// maildropLogin is the scripted maildrop over POP3S; auth returns its first
// login command.
func maildropLogin(t *testing.T) (addr, ca string, auth func() string) {
	srv := &wiretest.Maildrop{}
	addr, ca = srv.Start(t)
	return addr, ca, func() string {
		srv.Lock()
		defer srv.Unlock()
		if len(srv.Logins) == 0 {
			return ""
		}
		return srv.Logins[0]
	}
}

// With stdin and stderr on a terminal and no secret configured, send,
// fetch and probe --user ask for the password without echo and log in
// with it.
func TestPromptsForThePasswordOnATerminal(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		server func(t *testing.T) (string, string, func() string)
	}{
		{[]string{"send", "--check", "--from", "alice@example.test"}, smtpLogin},
		{[]string{"probe", "--json"}, smtpLogin},
		{[]string{"fetch", "--tls", "implicit", "--maildir", "MAILDIR"}, maildropLogin},
	} {
		args := tc.args
		t.Run(args[0], func(t *testing.T) {
			addr, ca, auth := tc.server(t)
			for i, a := range args {
				if a == "MAILDIR" {
					args[i] = t.TempDir()
				}
			}
			master, slave := openPTY(t)
			var env []string
			for _, e := range os.Environ() {
				if !strings.HasPrefix(e, "MAILSEC_PASSWORD=") {
					env = append(env, e)
				}
			}
			cmd := exec.Command(os.Args[0], append(args, "--server", addr, "--ca-file", ca,
				"--tls-server-name", "localhost", "--user", "alice", "--timeout", "5s")...)
			var stdout bytes.Buffer
			cmd.Env, cmd.Stdin, cmd.Stdout, cmd.Stderr = append(env, "MAILSEC_TEST_MAIN=1"), slave, &stdout, slave
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() }).Stop()
			// What the terminal shows: read until the prompt, then on.
			shown := make(chan string, 1)
			prompted := make(chan struct{})
			go func() {
				var seen strings.Builder
				r := bufio.NewReader(master)
				for {
					b, err := r.ReadByte()
					if err != nil {
						break
					}
					seen.WriteByte(b)
					if strings.HasSuffix(seen.String(), "Password for alice: ") {
						close(prompted)
					}
				}
				shown <- seen.String()
			}()
			select {
			case <-prompted:
			case <-time.After(10 * time.Second):
				cmd.Process.Kill()
				t.Fatal("no password prompt")
			}
			for deadline := time.Now().Add(5 * time.Second); !echoOff(slave); time.Sleep(5 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the prompt did not turn echo off")
				}
			}
			master.Write([]byte("s3cret\n"))
			err := cmd.Wait()
			slave.Close()
			master.Close()
			screen := <-shown
			if err != nil {
				t.Fatalf("%v: %s", err, screen)
			}
			if got, want := auth(), "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00alice\x00s3cret")); got != want {
				t.Errorf("server got %q, want %q", got, want)
			}
			if strings.Contains(screen, "s3cret") {
				t.Errorf("the password was echoed: %q", screen)
			}
			if args[0] == "probe" {
				var res probeResult
				if err := json.Unmarshal(stdout.Bytes(), &res); err != nil || res.Login != "PLAIN" {
					t.Errorf("probe login %q (%v): %s", res.Login, err, stdout.String())
				}
			}
		})
	}
}
