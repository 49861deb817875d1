package server

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A renewed certificate file is served without a restart.
func TestCertReloadOnChange(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	_, certA, keyA, err := ensureLocalCA(a)
	if err != nil {
		t.Fatal(err)
	}
	_, certB, keyB, err := ensureLocalCA(b)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	copyFile(t, certA, cert)
	copyFile(t, keyA, key)
	r, err := newCertReloader(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	first, _ := r.GetCertificate(nil)
	copyFile(t, certB, cert)
	copyFile(t, keyB, key)
	future := time.Now().Add(time.Minute)
	os.Chtimes(cert, future, future)
	r.mu.Lock()
	r.checked = time.Time{} // skip the once-a-second throttle
	r.mu.Unlock()
	second, _ := r.GetCertificate(nil)
	if string(first.Certificate[0]) == string(second.Certificate[0]) {
		t.Error("certificate not reloaded after the file changed")
	}
	os.WriteFile(cert, []byte("garbage"), 0o644)
	if err := r.Reload(); err == nil {
		t.Error("garbage certificate loaded")
	}
	if c, _ := r.GetCertificate(nil); c == nil {
		t.Error("old certificate dropped after a failed reload")
	}
}

func copyFile(t *testing.T, src, dst string) {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
