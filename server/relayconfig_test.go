package server

import (
	"errors"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
)

// A bad [relay] or [queue] value stops the start with a configuration
// error that names the key.
func TestRelayConfigErrorsNameTheKey(t *testing.T) {
	base := "data_dir = \"d\"\n[[listener]]\naddress = \"127.0.0.1:0\"\nkind = \"mx\"\n[relay]\n%s\n"
	for _, tc := range []struct{ set, key string }{
		{`tls = "strict"`, "relay.tls"},
		{`resolver = "127.0.0.1"`, "relay.resolver"},
		{`backoff_min = "2h"`, "relay.backoff_max"},
		{`lifetime = "-1h"`, "relay.lifetime"},
		{`trusted_networks = ["10.0.0.0/33"]`, "relay.trusted_networks"},
		{`smarthost = "smtp.example:587"` + "\n" + `smarthost_user = "me"` + "\n" + `smarthost_tls = "may"`, "relay.smarthost_tls"},
		{"[[relay.route]]\ndomain = \"x.test\"\ntls = \"maybe\"", "relay.route[1].tls"},
	} {
		text := strings.Replace(base, "%s", tc.set, 1)
		if strings.HasPrefix(tc.set, "[[") {
			text = DefaultConfig() + "\n" + tc.set + "\n"
		}
		_, err := Parse(text)
		if !errors.Is(err, mailsec.Config) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v", tc.set, err)
		}
	}
	for _, tc := range []struct{ set, key string }{
		{"backend = \"sqlite\"", "queue.backend"},
		{"backend = \"postgres\"", "queue.dsn"},
		{"backend = \"postgres\"\ndsn = \"host=db user=m password=secret\"", "queue.dsn"},
		{"backend = \"postgres\"\ndsn = \"postgres://m:secret@db/mailsec\"", "queue.dsn"},
	} {
		text := strings.Replace(DefaultConfig(), "backend = \"embedded\"", tc.set, 1)
		_, err := Parse(text)
		if !errors.Is(err, mailsec.Config) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v", tc.set, err)
		}
	}
	if _, err := Parse(DefaultConfig()); err != nil {
		t.Fatalf("the default configuration: %v", err)
	}
}
