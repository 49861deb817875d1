package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/userdb"
)

func runUsers(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := usersCmd()
	var out bytes.Buffer
	cmd.SetIn(strings.NewReader(stdin))
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

// The password comes from stdin when it is not a terminal, never argv.
func TestUsersAddListDel(t *testing.T) {
	dir := t.TempDir()
	if _, err := runUsers(t, "s3cret\n", "add", "alice", "--data", dir); err != nil {
		t.Fatal(err)
	}
	db, err := userdb.Open(filepath.Join(dir, "users"), nil)
	if err != nil || !db.CheckPassword("alice", "s3cret") {
		t.Fatalf("password not stored: %v", err)
	}
	if out, _ := runUsers(t, "", "list", "--data", dir); out != "alice\n" {
		t.Errorf("list %q", out)
	}
	if _, err := runUsers(t, "", "add", "bob", "--data", dir); err == nil {
		t.Error("empty password accepted")
	}
	if _, err := runUsers(t, "pw\n", "add", "../evil", "--data", dir); exitCode(err) != exitUsage {
		t.Errorf("bad name: %v", err)
	}
	if _, err := runUsers(t, "", "del", "alice", "--data", dir); err != nil {
		t.Fatal(err)
	}
	if out, _ := runUsers(t, "", "list", "--data", dir); out != "" {
		t.Errorf("list after del %q", out)
	}
}
