package metrics

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
)

// The records smtpd and pop3d write become counts, with the listener from
// the session logger, even when the log itself is off.
func TestEvents(t *testing.T) {
	m := New()
	log := slog.New(NewEvents(m, slog.DiscardHandler)).With("session", "S1", "listener", "pop3s")
	log.Info("authenticated", "user", "alice", "mechanism", "PLAIN")
	log.Warn("authentication failed", "err", &mailsec.Error{Code: mailsec.AuthUnavailable, Op: "AUTH LOGIN"}, "failures", 1)
	log.Info("disconnect", "user", "alice", "retrieved", 2, "retrieved_octets", 300)
	log.Info("disconnect") // smtpd's: nothing retrieved
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body, _ := io.ReadAll(rec.Body)
	for _, want := range []string{
		`mailsec_auth_total{listener="pop3s",mechanism="PLAIN",result="success"} 1`,
		`mailsec_auth_total{listener="pop3s",mechanism="LOGIN",result="failure"} 1`,
		`mailsec_pop3_retrievals_total{listener="pop3s"} 2`,
		`mailsec_pop3_retrieved_bytes_total{listener="pop3s"} 300`,
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("missing %s", want)
		}
	}
}
