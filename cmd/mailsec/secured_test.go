package main

import (
	"encoding/json"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailsec/mailsec/internal/wiretest"
)

// wiretestCA writes a PEM file trusting wiretest.Cert.
func wiretestCA(t *testing.T) string {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: wiretest.Cert().Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	return ca
}

// factsOut is the part of a --json result that says how the session was
// secured, and how it ended.
type factsOut struct {
	OK      bool `json:"ok"`
	TLSUsed bool `json:"tls_used"`
	TLS     *struct {
		Version string `json:"version"`
	} `json:"tls"`
	Security []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	} `json:"security"`
	Error *jsonError `json:"error"`
}

func parseFacts(t *testing.T, out string) factsOut {
	t.Helper()
	var f factsOut
	if err := json.Unmarshal([]byte(out), &f); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return f
}

// startTLS plays a server up to the EHLO under TLS, not answered yet.
func startTLS(p *wiretest.Peer) {
	p.Send("220 test ESMTP\r\n")
	p.Expect("EHLO")
	p.Send("250-test\r\n250 STARTTLS\r\n")
	p.Expect("STARTTLS")
	p.Send("220 go ahead\r\n")
	p.StartTLS()
	p.Expect("EHLO")
}

// STARTTLS succeeds, then AUTH is refused: the JSON still says the session
// was under TLS, with its facts, and which driver failed.
func TestSendJSONKeepsTLSFactsAfterRefusedAuth(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		startTLS(p)
		p.Send("250-test\r\n250 AUTH PLAIN\r\n")
		p.Expect("AUTH PLAIN")
		p.Send("535 5.7.8 authentication failed\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	t.Setenv("MAILSEC_PASSWORD", "pw")
	out, code := runFresh(t, sendCmd(), "send", "--json", "--server", addr, "--ca-file", wiretestCA(t),
		"--tls-server-name", "localhost", "--user", "alice", "--from", "alice@example.test", "--to", "bob@example.test", "--timeout", "5s")
	<-done
	f := parseFacts(t, out)
	if code != exitNoPerm || f.OK || f.Error == nil || f.Error.Reply == nil || f.Error.Reply.Code != 535 {
		t.Fatalf("exit %d, %s", code, out)
	}
	if !f.TLSUsed || f.TLS == nil || f.TLS.Version == "" {
		t.Errorf("TLS facts lost after the refused AUTH: %s", out)
	}
	if len(f.Security) != 2 || f.Security[0].Name != "STARTTLS" || f.Security[0].Status != "closed" || f.Security[1].Status != "failed" {
		t.Errorf("driver reports %+v", f.Security)
	}
}

// The same for fetch: implicit TLS, then a refused login.
func TestFetchJSONKeepsTLSFactsAfterRefusedLogin(t *testing.T) {
	srv := &wiretest.Maildrop{Msgs: []string{"A: 1\r\n\r\nx\r\n"}, Login: "-ERR [AUTH] invalid login"}
	addr, ca := srv.Start(t)
	t.Setenv("MAILSEC_PASSWORD", "pw")
	out, code := runFresh(t, fetchCmd(), "fetch", "--json", "--server", addr, "--tls", "implicit", "--ca-file", ca,
		"--tls-server-name", "localhost", "--user", "carol", "--maildir", filepath.Join(t.TempDir(), "Mail"), "--timeout", "5s")
	f := parseFacts(t, out)
	if code != exitNoPerm || f.OK || f.Error == nil {
		t.Fatalf("exit %d, %s", code, out)
	}
	if !f.TLSUsed || f.TLS == nil || f.TLS.Version == "" {
		t.Errorf("TLS facts lost after the refused login: %s", out)
	}
	if len(f.Security) != 1 || f.Security[0].Status != "failed" {
		t.Errorf("driver reports %+v", f.Security)
	}
}

// And for probe: STARTTLS succeeds, then the server hangs up on EHLO; the
// JSON still shows the TLS that was set up.
func TestProbeJSONKeepsTLSFactsAfterFailure(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		startTLS(p)
	})
	out, code := runFresh(t, probeCmd(), "probe", "--json", "--server", addr, "--ca-file", wiretestCA(t),
		"--tls-server-name", "localhost", "--timeout", "5s")
	<-done
	f := parseFacts(t, out)
	if code != exitTempFail || f.OK || f.Error == nil {
		t.Fatalf("exit %d, %s", code, out)
	}
	if f.TLS == nil || f.TLS.Version == "" {
		t.Errorf("TLS facts lost after the failure: %s", out)
	}
}
