package main

import (
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/smtpd"
)

// startSMTPD runs an MX listener of the in-process server (STARTTLS
// offered, AUTH only after it) with cert, and returns its address.
func startSMTPD(t *testing.T, cert tls.Certificate) string {
	t.Helper()
	srv := &smtpd.Server{Hostname: "mx.test", TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Backend: smtpd.Discard{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln, smtpd.MX, smtpd.TLSMay)
	t.Cleanup(func() { srv.Shutdown(t.Context()) })
	return ln.Addr().String()
}

// probeLines runs probe against a server whose certificate was issued by
// the root in rootPEM, and returns what it printed, as text and as JSON.
func probeLines(t *testing.T, addr string, rootPEM []byte) (string, probeResult, int) {
	t.Helper()
	ca := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(ca, rootPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"probe", "--server", addr, "--ca-file", ca, "--tls-server-name", "localhost", "--timeout", "5s"}
	text, code := runFresh(t, probeCmd(), args...)
	out, _ := runFresh(t, probeCmd(), append(args, "--json")...)
	var res probeResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return text, res, code
}

// The probe ends with verdicts a person can act on, labels aligned; the
// root's revocation line, never checked, is not shown.
func TestProbeVerdicts(t *testing.T) {
	cert, root := wiretest.Stapled(t, 87*24*time.Hour+time.Hour, ocsp.Good)
	text, res, code := probeLines(t, startSMTPD(t, cert), root)
	if code != exitOK {
		t.Fatalf("exit %d:\n%s", code, text)
	}
	want := "\nSTARTTLS offered:        yes\n" +
		"AUTH offered before TLS: no\n" +
		"certificate:             verified, 87 days left\n" +
		"revocation:              good\n"
	if !strings.HasSuffix(text, want) {
		t.Errorf("probe output does not end in\n%s\nbut is\n%s", want, text)
	}
	if strings.Contains(text, "wiretest root: not-checked") || strings.Count(text, "  revocation ") != 1 {
		t.Errorf("the root's revocation line is shown:\n%s", text)
	}
	v := res.Verdict
	if v == nil || v.StartTLS != "yes" || v.AuthOfferedBeforeTLS || v.Certificate != "verified" || v.DaysLeft == nil ||
		*v.DaysLeft != 87 || v.Revocation != "good" {
		t.Errorf("JSON verdict %+v", v)
	}
}

// A revoked certificate: the handshake refuses it, and the verdicts say
// so.
func TestProbeVerdictsOfARevokedCertificate(t *testing.T) {
	cert, root := wiretest.Stapled(t, 30*24*time.Hour+time.Hour, ocsp.Revoked)
	text, res, code := probeLines(t, startSMTPD(t, cert), root)
	if code != exitNoPerm {
		t.Fatalf("exit %d:\n%s", code, text)
	}
	for _, want := range []string{"\ncertificate:             REJECTED (TLSCertificate), 30 days left\n",
		"\nrevocation:              REVOKED: CN=localhost\n"} {
		if !strings.Contains(text, want) {
			t.Errorf("probe output lacks %q:\n%s", want, text)
		}
	}
	if v := res.Verdict; v == nil || v.Certificate != "rejected" || v.Revocation != "revoked" {
		t.Errorf("JSON verdict %+v", v)
	}
}

// A POP3 server that announces USER in CAPA before STLS, and offers no
// STLS: the warning and the verdict both name USER; one without CAPA
// only assumes USER, and neither does.
func TestProbePOP3WarnsOfUserBeforeTLS(t *testing.T) {
	peer := func(capa bool) string {
		addr, _, _ := wiretest.Scripted(t, func(p *wiretest.Peer) {
			p.Send("+OK pop.test ready\r\n")
			p.Expect("CAPA")
			if capa {
				p.Send("+OK\r\nUSER\r\nUIDL\r\n.\r\n")
			} else {
				p.Send("-ERR unknown command\r\n")
			}
			p.Expect("QUIT")
			p.Send("+OK bye\r\n")
		})
		return addr
	}
	out, _ := runFresh(t, probeCmd(), "probe", "--pop3", "--tls", "starttls", "--server", peer(true), "--timeout", "3s")
	if !strings.Contains(out, "USER is offered before TLS") || !strings.Contains(out, "login offered before TLS: YES (USER)") {
		t.Errorf("probe --pop3 does not warn of USER before TLS:\n%s", out)
	}
	out, _ = runFresh(t, probeCmd(), "probe", "--pop3", "--tls", "starttls", "--server", peer(false), "--timeout", "3s")
	if strings.Contains(out, "USER is offered before TLS") || !strings.Contains(out, "login offered before TLS: no") {
		t.Errorf("probe --pop3 warns of a USER the server did not announce:\n%s", out)
	}
}
