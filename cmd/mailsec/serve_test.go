package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mailsec/mailsec/server"
)

func TestServeConfigOverrides(t *testing.T) {
	c, err := loadServeConfig("", "/tmp/x", "example.test")
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/tmp/x" || len(c.Domains) != 1 || c.Domains[0] != "example.test" || len(c.Listeners) != 5 {
		t.Errorf("%+v", c)
	}
	if _, err := loadServeConfig("/nonexistent.toml", "", ""); exitCode(err) != exitConfig {
		t.Errorf("missing config: %v", err)
	}
}

func TestBannerSaysWhereEverythingIs(t *testing.T) {
	var b bytes.Buffer
	printBanner(&b, server.Info{DataDir: "./d", UsersFile: "d/users", MailDir: "d/mail", CAFile: "d/tls/ca.pem",
		Listeners: []server.ListenerInfo{
			{Listener: server.Listener{Name: "mx", Kind: "mx", TLS: "may"}, Addr: "127.0.0.1:2525"},
			{Listener: server.Listener{Name: "submission", Kind: "submission"}, Addr: "127.0.0.1:2587"},
			{Listener: server.Listener{Name: "pop3", Kind: "pop3"}, Addr: "127.0.0.1:2110"},
			{Listener: server.Listener{Name: "pop3s", Kind: "pop3s"}, Addr: "127.0.0.1:2995"},
		}, MetricsAddr: "127.0.0.1:9725"}, "")
	for _, want := range []string{"d/users", "d/tls/ca.pem", "127.0.0.1:2525", "STARTTLS may",
		"mailsec users add alice --data ./d", "swaks --server 127.0.0.1:2587", "mailsec send --server 127.0.0.1:2587 --ca-file d/tls/ca.pem",
		"STLS required before login", "curl --url pop3s://127.0.0.1:2995/1 --cacert d/tls/ca.pem",
		"-starttls pop3 -connect 127.0.0.1:2110", "http://127.0.0.1:9725/metrics"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, b.String())
		}
	}
}

// The example addresses are in the configured domain, and users add is
// shown the flags that make it see serve's configuration.
func TestBannerUsesTheConfiguredDomain(t *testing.T) {
	var b bytes.Buffer
	printBanner(&b, server.Info{DataDir: "./d", CAFile: "d/tls/ca.pem", Domains: []string{"example.org", "example.net"},
		Listeners: []server.ListenerInfo{
			{Listener: server.Listener{Name: "mx", Kind: "mx"}, Addr: "127.0.0.1:2525"},
			{Listener: server.Listener{Name: "submission", Kind: "submission"}, Addr: "127.0.0.1:2587"},
			{Listener: server.Listener{Name: "smtps", Kind: "smtps"}, Addr: "127.0.0.1:2465"},
		}}, sameConfig("my.toml", "example.org"))
	out := b.String()
	if strings.Contains(out, "@localhost") {
		t.Errorf("banner names localhost addresses:\n%s", out)
	}
	for _, want := range []string{"mailsec users add alice --data ./d --config my.toml --domain example.org\n",
		"--auth-user alice --to alice@example.org", "--from alice@example.org --to alice@example.org",
		"--mail-from alice@example.org --mail-rcpt alice@example.org"} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
}
