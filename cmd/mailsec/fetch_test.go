package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/mailbox"
)

// The fetch engine's own behaviour is tested in package fetch; these tests
// are of what the command adds: the lock taken before connecting, and the
// exit statuses.

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

// A second run with nothing new exits 0, and fetches nothing.
func TestFetchNothingNewExitsZero(t *testing.T) {
	srv := &wiretest.Maildrop{Msgs: []string{"A: 1\r\n\r\n.dot\r\n"}}
	addr, ca := srv.Start(t)
	box := filepath.Join(t.TempDir(), "Mail")
	cf, spec := fetchFlags(t, addr, ca, "--maildir", box)
	for i, want := range []int{1, 0} {
		res := &fetchResult{}
		err := runFetch(t.Context(), cf, spec, res)
		if err != nil || res.Fetched != want || exitCode(err) != 0 {
			t.Fatalf("run %d: %+v %v", i, res, err)
		}
	}
	if got := wiretest.NewMessages(t, box); len(got) != 1 || got[0] != "A: 1\n\n.dot\n" {
		t.Errorf("%q", got)
	}
}

// Two fetches into one mailbox: the second fails at once with exit status
// 75 (temporary failure), before it even connects.
func TestFetchLocked(t *testing.T) {
	srv := &wiretest.Maildrop{Msgs: []string{"A: 1\r\n\r\nx\r\n"}}
	addr, ca := srv.Start(t)
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
	if got := wiretest.NewMessages(t, box); len(got) != 0 || srv.Quits != 0 {
		t.Errorf("the locked-out fetch went on: %q, %d sessions", got, srv.Quits)
	}
}

// A server that reuses a UIDL makes fetch --delete stop with exit status 76
// (protocol), deleting nothing.
func TestFetchDuplicateUIDLExitsProtocol(t *testing.T) {
	srv := &wiretest.Maildrop{Msgs: []string{"A: 1\r\n\r\nold\r\n", "A: 2\r\n\r\nnew\r\n"}, UIDs: []string{"dup", "dup"}}
	addr, ca := srv.Start(t)
	box := filepath.Join(t.TempDir(), "Mail")
	cf, spec := fetchFlags(t, addr, ca, "--maildir", box, "--delete")
	err := runFetch(t.Context(), cf, spec, &fetchResult{})
	if mailsec.CodeOf(err) != mailsec.Protocol || exitCode(err) != exitProtocol {
		t.Fatalf("error %v (exit %d), want a Protocol error", err, exitCode(err))
	}
	if left := srv.Left(); len(left) != 2 {
		t.Fatalf("messages left on the server %v", left)
	}
}
