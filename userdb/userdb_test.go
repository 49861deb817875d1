package userdb

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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

// A missing user costs the same argon2 work as a wrong password. The work
// is counted in the memory argon2id fills (Memory KiB per call), not in
// time, so a loaded machine cannot make the test pass or fail.
func TestNoEnumerationByTiming(t *testing.T) {
	db, _ := Open(filepath.Join(t.TempDir(), "users"), &Options{Argon2: Argon2Params{Time: 2, Memory: 8 << 10, Threads: 1}})
	db.Add("alice", "pw")
	work := func(user string) uint64 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		for i := 0; i < 5; i++ {
			db.CheckPassword(user, "wrong")
		}
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc
	}
	known, unknown := work("alice"), work("nobody")
	if known < 5*8<<20 {
		t.Fatalf("a wrong password filled %d bytes, less than argon2id's 5 x 8 MiB", known)
	}
	if unknown < known*9/10 {
		t.Errorf("unknown user filled %d bytes, known user %d: the missing user is cheaper", unknown, known)
	}
}

func TestCorruptFileRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	os.WriteFile(path, []byte("alice $argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAA scram-sha-256$4096$AA$AA$AA\n"), 0o600)
	if _, err := Open(path, cheap); err == nil {
		t.Error("absurd argon2 cost accepted")
	}
}

// Concurrent logins take at most a few hashes' memory at once: 32 guesses
// in parallel against 8 MiB hashes would hold 256 MiB unbounded.
func TestConcurrentVerificationsBounded(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "users"), &Options{Argon2: Argon2Params{Time: 1, Memory: 8 << 10, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Add("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	done := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
		}
	}()
	var wg sync.WaitGroup
	for i := 0; i < 32; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db.CheckPassword("alice", "guess")
		}()
	}
	wg.Wait()
	close(done)
	<-sampled
	if grew := int64(peak.Load()) - int64(base.HeapInuse); grew > 128<<20 {
		t.Errorf("heap grew by %d MiB during 32 concurrent verifications", grew>>20)
	}
}
