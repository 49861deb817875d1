package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func testConfig(t *testing.T, dir string) *Config {
	c := Default()
	c.DataDir = dir
	for i := range c.Listeners {
		c.Listeners[i].Address = "127.0.0.1:0"
	}
	c.Limits.AuthFailureDelay = Duration(time.Millisecond)
	return c
}

func TestDefaultConfig(t *testing.T) {
	c := Default()
	if c.DataDir != "./mailsec-data" || len(c.Domains) != 1 || c.Domains[0] != "localhost" {
		t.Errorf("%+v", c)
	}
	want := map[string]string{"mx": "127.0.0.1:2525", "submission": "127.0.0.1:2587", "smtps": "127.0.0.1:2465",
		"pop3": "127.0.0.1:2110", "pop3s": "127.0.0.1:2995"}
	for _, l := range c.Listeners {
		if want[l.Kind] != l.Address {
			t.Errorf("listener %+v", l)
		}
	}
	if _, err := Parse("data_dir = 'x'\nbogus = 1\n[[listener]]\naddress='a:1'\nkind='mx'\n"); err == nil ||
		!strings.Contains(err.Error(), "bogus") {
		t.Errorf("unknown key: %v", err)
	}
	if _, err := Parse("data_dir = 'x'\n[[listener]]\naddress='a:1'\nkind='mx'\ntls='maybe'\n"); err == nil {
		t.Error("bad tls policy accepted")
	}
}

// The first start makes the CA and certificate, later starts reuse them;
// mail goes end to end through submission with the generated CA trusted.
func TestStartEndToEnd(t *testing.T) {
	dir := t.TempDir()
	srv, err := Start(testConfig(t, dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	info := srv.Info()
	if len(info.Listeners) != 5 || len(info.Skipped) != 0 || info.CAFile != filepath.Join(dir, "tls", "ca.pem") {
		t.Fatalf("%+v", info)
	}
	ca1, _ := os.ReadFile(info.CAFile)
	if err := srv.Env().Users.Add("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	var sub string
	for _, l := range info.Listeners {
		if l.Kind == "submission" {
			sub = l.Addr
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca1)
	c, err := smtp.Dial(sub)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Auth(smtp.PlainAuth("", "alice", "pw", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("alice@localhost"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@localhost"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: e2e\r\n\r\nhi\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	c.Quit()
	ms, _ := srv.Env().Store.List("alice")
	if len(ms) != 1 {
		t.Fatalf("%d messages", len(ms))
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv2, err := Start(testConfig(t, dir), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Shutdown(context.Background())
	ca2, _ := os.ReadFile(info.CAFile)
	if !bytes.Equal(ca1, ca2) {
		t.Error("CA regenerated on second start")
	}
}
