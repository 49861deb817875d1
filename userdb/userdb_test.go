package userdb

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var cheap = &Options{Argon2: Argon2Params{Time: 1, Memory: 64, Threads: 1}}

func TestAddCheckDelete(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	db, err := Open(path, cheap)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Add("Alice", "correct horse pw1"); err != nil {
		t.Fatal(err)
	}
	if !db.CheckPassword("alice", "correct horse pw1") || !db.CheckPassword("ALICE", "correct horse pw1") || db.CheckPassword("alice", "correct horse pw2") {
		t.Error("CheckPassword")
	}
	if db.CheckPassword("nobody", "correct horse pw1") || db.Exists("nobody") || !db.Exists("alice") {
		t.Error("missing user")
	}
	if sc, ok := db.SCRAMSHA256("alice"); !ok || sc.Iterations != 4096 || len(sc.StoredKey) != 32 {
		t.Errorf("scram %+v", sc)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}
	text, _ := os.ReadFile(path)
	if strings.Contains(string(text), "correct horse pw1") || !strings.Contains(string(text), "alice $argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("file %s", text)
	}
	// Another process (a second DB) sees the change without a restart.
	db2, _ := Open(path, cheap)
	if err := db2.Add("bob", "pw"); err != nil {
		t.Fatal(err)
	}
	if !db.Exists("bob") {
		t.Error("change not picked up")
	}
	if err := db.Delete("alice"); err != nil {
		t.Fatal(err)
	}
	if err := db.Delete("alice"); err == nil {
		t.Error("deleted twice")
	}
	if got := db2.List(); len(got) != 1 || got[0] != "bob" {
		t.Errorf("list %v", got)
	}
}

func TestInvalidNames(t *testing.T) {
	db, _ := Open(filepath.Join(t.TempDir(), "users"), cheap)
	for _, n := range []string{"", "../x", "a b", "-x", "a/b", strings.Repeat("a", 65)} {
		if err := db.Add(n, "pw"); err == nil {
			t.Errorf("accepted %q", n)
		}
	}
}

// A missing user costs the same argon2 work as a wrong password.
func TestNoEnumerationByTiming(t *testing.T) {
	db, _ := Open(filepath.Join(t.TempDir(), "users"), &Options{Argon2: Argon2Params{Time: 2, Memory: 8 << 10, Threads: 1}})
	db.Add("alice", "pw")
	measure := func(user string) time.Duration {
		start := time.Now()
		for i := 0; i < 5; i++ {
			db.CheckPassword(user, "wrong")
		}
		return time.Since(start)
	}
	known, unknown := measure("alice"), measure("nobody")
	if unknown < known/2 {
		t.Errorf("unknown user %v, known %v", unknown, known)
	}
}

func TestCorruptFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	os.WriteFile(path, []byte("alice $argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA scram-sha-256$4096$AA$AA$AA\n"), 0o600)
	if _, err := Open(path, cheap); err == nil {
		t.Error("absurd argon2 cost accepted")
	}
}
