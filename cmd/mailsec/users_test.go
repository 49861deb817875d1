package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/server"
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
	out, err := runUsers(t, "s3cret\n", "add", "alice", "--data", dir)
	if err != nil {
		t.Fatal(err)
	}
	if want := "mail for alice@localhost goes to " + filepath.Join(dir, "mail", "alice") + "\n"; !strings.HasSuffix(out, want) {
		t.Errorf("add says %q, want it to end in %q", out, want)
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

// users add names the addresses of the domains serve is configured with:
// --domain as serve's, or the configuration file's domains and data_dir.
func TestUsersAddNamesTheConfiguredAddresses(t *testing.T) {
	dir := t.TempDir()
	out, err := runUsers(t, "pw\n", "add", "alice", "--data", dir, "--domain", "example.org")
	if err != nil || !strings.Contains(out, "mail for alice@example.org goes to") {
		t.Errorf("--domain: %q %v", out, err)
	}
	conf := filepath.Join(dir, "serve.toml")
	text := strings.Replace(server.DefaultConfig(), `domains = ["localhost"]`, `domains = ["example.org", "example.net"]`, 1)
	text = strings.Replace(text, `data_dir = "./mailsec-data"`, `data_dir = "`+filepath.Join(dir, "data")+`"`, 1)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runUsers(t, "pw\n", "add", "bob", "--config", conf)
	if err != nil || !strings.Contains(out, "mail for bob@example.org, bob@example.net goes to "+filepath.Join(dir, "data", "mail", "bob")) {
		t.Errorf("--config: %q %v", out, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "users")); err != nil {
		t.Errorf("the users file is not in the configuration's data_dir: %v", err)
	}
}
