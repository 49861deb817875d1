package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
)

// TestMain runs the test binary as mailsec itself when MAILSEC_TEST_MAIN
// is set, so that tests can check the exit status a shell sees.
func TestMain(m *testing.M) {
	if os.Getenv("MAILSEC_TEST_MAIN") != "" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runMain runs mailsec with args in a child process and returns its stdout,
// stderr and exit status.
func runMain(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "MAILSEC_TEST_MAIN=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
}

// An unknown command, and no command at all, are usage errors (64) with the
// commands listed on stderr; so is a command group without its command.
// --help and --version succeed.
func TestExitStatusOfBadCommandLines(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		want     int
		inStderr []string
	}{
		{[]string{"foo"}, exitUsage, []string{`unknown command "foo"`, "  send ", "  fetch ", "  probe ", "  serve "}},
		{nil, exitUsage, []string{"mailsec needs a command", "  send ", "  users "}},
		{[]string{"users"}, exitUsage, []string{"mailsec users needs a command", "  add ", "  list "}},
		{[]string{"queue", "bogus"}, exitUsage, []string{`unknown command "bogus" for "mailsec queue"`}},
		{[]string{"--help"}, exitOK, nil},
		{[]string{"--version"}, exitOK, nil},
	} {
		stdout, stderr, code := runMain(t, tc.args...)
		if code != tc.want {
			t.Errorf("mailsec %q: exit %d, want %d\n%s", tc.args, code, tc.want, stderr)
		}
		for _, s := range tc.inStderr {
			if !strings.Contains(stderr, s) {
				t.Errorf("mailsec %q: stderr lacks %q:\n%s", tc.args, s, stderr)
			}
		}
		if tc.want == exitUsage && stdout != "" {
			t.Errorf("mailsec %q: stdout %q", tc.args, stdout)
		}
		if tc.args != nil && tc.args[0] == "--version" && !strings.HasPrefix(stdout, "mailsec ") {
			t.Errorf("--version: %q", stdout)
		}
	}
}

// --version names the module version and the commit go build recorded.
func TestVersionNamesTheCommit(t *testing.T) {
	bi := &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Path: "github.com/mailsec/mailsec", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123abcd"}, {Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"}}}
	if got, want := version(bi, true), "v1.2.3, commit 0123abcd, 2026-01-02T03:04:05Z, modified (go1.26.0)"; got != want {
		t.Errorf("version %q, want %q", got, want)
	}
	bi.Main.Version, bi.Settings = "", nil
	if got := version(bi, true); got != "(devel) (go1.26.0)" {
		t.Errorf("version without VCS %q", got)
	}
	if got := version(nil, false); got != "(no build information)" {
		t.Errorf("version without build info %q", got)
	}
}
