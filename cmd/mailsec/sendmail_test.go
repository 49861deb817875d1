package main

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/smtpd"
)

// sink is an in-process smtpd on loopback that keeps what it accepts: the
// envelope and the stored bytes of each message.
type sink struct {
	smtpd.RelayRule
	addr, caFile string
	mu           sync.Mutex
	envs         []*smtpd.Envelope
	msgs         []string
}

// Deliver implements smtpd.Backend.
func (s *sink) Deliver(_ context.Context, env *smtpd.Envelope, msg io.Reader) error {
	b, err := io.ReadAll(msg)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.envs, s.msgs = append(s.envs, env), append(s.msgs, string(b))
	return nil
}

// last returns the one message the sink holds, its Received field (the
// server's, not the client's doing) cut off and returned apart.
func (s *sink) last(t *testing.T) (env *smtpd.Envelope, received, msg string) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.msgs) != 1 {
		t.Fatalf("%d messages stored, want 1", len(s.msgs))
	}
	m := s.msgs[0]
	end := 0
	for {
		i := strings.Index(m[end:], "\r\n")
		end += i + 2
		if m[end] != '\t' && m[end] != ' ' {
			break
		}
	}
	return s.envs[0], m[:end], m[end:]
}

// startSink starts a sink with STARTTLS on the MX port, relaying for
// loopback so that any recipient is taken without AUTH, and writes the CA
// file that trusts its certificate.
func startSink(t *testing.T) *sink {
	t.Helper()
	s := &sink{caFile: filepath.Join(t.TempDir(), "ca.pem"),
		RelayRule: smtpd.RelayRule{Networks: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}}
	cert := wiretest.Cert()
	if err := os.WriteFile(s.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Leaf.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := &smtpd.Server{Hostname: "mx.test", Domains: []string{"mx.test"}, Backend: s,
		TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}},
		Limits:    smtpd.Limits{CommandTimeout: 5 * time.Second}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.addr = ln.Addr().String()
	go srv.Serve(ln, smtpd.MX, smtpd.TLSMay)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return s
}

// runSendStdin runs a fresh send command (the shared tree's flags keep
// their values from one run to the next) with stdin, away from the user's
// configuration, and returns its exit code and error text.
func runSendStdin(t *testing.T, stdin string, args ...string) (int, string) {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	in := filepath.Join(t.TempDir(), "stdin")
	if err := os.WriteFile(in, []byte(stdin), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	old := os.Stdin
	os.Stdin = f
	defer func() { os.Stdin = old }()
	root := &cobra.Command{Use: "mailsec", SilenceUsage: true, SilenceErrors: true}
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(sendCmd())
	root.SetArgs(append([]string{"send"}, args...))
	if err := root.Execute(); err != nil {
		return exitCode(err), err.Error()
	}
	return exitOK, ""
}

// sinkArgs are the flags that reach s over verified STARTTLS.
func sinkArgs(s *sink, args ...string) []string {
	return append([]string{"--server", s.addr, "--ca-file", s.caFile, "--tls-server-name", "localhost"}, args...)
}

// sendToSink runs send with msg on stdin and args against a fresh sink,
// fails the test unless it exits 0, and returns what the sink stored.
func sendToSink(t *testing.T, msg string, args ...string) (env *smtpd.Envelope, received, stored string) {
	t.Helper()
	s := startSink(t)
	if code, errText := runSendStdin(t, msg, sinkArgs(s, args...)...); code != exitOK {
		t.Fatalf("exit %d: %s", code, errText)
	}
	return s.last(t)
}

// The sendmail flags as git send-email and cron use them, and mailsec's
// own: -f, -F, -i, -oi, -B, --cc, --bcc, --header and --helo, checked in
// the envelope and in the bytes the server stored.
func TestSendmailFlags(t *testing.T) {
	msg := "To: bob@example.test\nSubject: original\nBcc: hidden@example.test\n\nbody\n.\nmore\n"
	env, received, got := sendToSink(t, msg, "-f", "alice@example.test", "-FAlice Liddell", "-oi", "-i",
		"-oem", "-B8BITMIME", "--cc", "Carol <carol@example.test>", "--bcc", "dave@example.test",
		"--header", "X-Trace: 42", "--header", "subject: replaced", "--helo", "client.example.test",
		"bob@example.test")
	if env.From != "alice@example.test" || !reflect.DeepEqual(env.To, []string{"bob@example.test", "carol@example.test", "dave@example.test"}) {
		t.Errorf("envelope from %q to %q", env.From, env.To)
	}
	if env.Body != "" {
		t.Errorf("BODY=%s for a 7-bit message: -B must not be trusted", env.Body)
	}
	want := "To: bob@example.test\r\nCc: Carol <carol@example.test>\r\nX-Trace: 42\r\nsubject: replaced\r\n" +
		"From: Alice Liddell <alice@example.test>\r\n\r\nbody\r\n.\r\nmore\r\n"
	if got != want {
		t.Errorf("stored\n%q\nwant\n%q", got, want)
	}
	if !strings.HasPrefix(received, "Received: from client.example.test ") {
		t.Errorf("--helo not used: %q", received)
	}
}

// sendmail -t -i as PHP's mail() runs it: recipients from To, Cc and Bcc,
// the sender from the From field, the Bcc field gone, nothing else changed.
func TestSendmailReadRecipients(t *testing.T) {
	msg := "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nCc: \"Carol C\" <carol@example.test>\r\n" +
		"Bcc: dave@example.test,\r\n erin@example.test\r\nSubject: hi\r\n\r\nBcc: body@example.test\r\n"
	env, _, got := sendToSink(t, msg, "-t", "-i")
	wantTo := []string{"bob@example.test", "carol@example.test", "dave@example.test", "erin@example.test"}
	if env.From != "alice@example.test" || !reflect.DeepEqual(env.To, wantTo) {
		t.Errorf("envelope from %q to %q", env.From, env.To)
	}
	want := "From: Alice <alice@example.test>\r\nTo: bob@example.test\r\nCc: \"Carol C\" <carol@example.test>\r\n" +
		"Subject: hi\r\n\r\nBcc: body@example.test\r\n"
	if got != want {
		t.Errorf("stored\n%q\nwant\n%q", got, want)
	}
}

// --cc on a message that has a Cc field merges into it, one field.
func TestSendCcMergesIntoMessage(t *testing.T) {
	msg := "From: a@example.test\r\nCc: b@example.test,\r\n c@example.test\r\n\r\nx\r\n"
	env, _, got := sendToSink(t, msg, "--cc", "d@example.test")
	if !reflect.DeepEqual(env.To, []string{"d@example.test"}) {
		t.Errorf("envelope to %q", env.To)
	}
	if want := "From: a@example.test\r\nCc: b@example.test, c@example.test, d@example.test\r\n\r\nx\r\n"; got != want {
		t.Errorf("stored\n%q\nwant\n%q", got, want)
	}
}

// The DSN flags reach the server's envelope as RFC 3461 writes them.
func TestSendDSNFlags(t *testing.T) {
	env, _, _ := sendToSink(t, "From: a@example.test\r\n\r\nx\r\n",
		"-N", "success, failure", "--dsn-return", "hdrs", "--envid", "q+1 2", "b@example.test", "c@example.test")
	if env.Ret != "HDRS" || env.EnvID != "q+2B1+202" {
		t.Errorf("RET %q ENVID %q", env.Ret, env.EnvID)
	}
	for _, r := range env.Rcpts {
		if r.Notify != "SUCCESS,FAILURE" {
			t.Errorf("%s: NOTIFY %q", r.Addr, r.Notify)
		}
	}
}

// DSN asked of a server that does not offer it fails before MAIL: the
// notices the sender counts on would never come (exit 69, as msmtp fails).
func TestSendDSNWithoutServerSupport(t *testing.T) {
	addr, p, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		p.Send("220 mx.test\r\n")
		p.Expect("EHLO")
		p.Send("250-mx.test\r\n250 8BITMIME\r\n")
		// Whatever the client sends until it hangs up.
		for {
			l, err := p.R.ReadString('\n')
			if err != nil {
				return
			}
			p.Got = append(p.Got, strings.TrimRight(l, "\r\n"))
		}
	})
	code, errText := runSendStdin(t, "From: a@example.test\r\n\r\nx\r\n", "--server", addr, "--tls", "none",
		"--dsn-notify", "never", "b@example.test")
	want := "DSN parameters given but the server does not offer DSN (RFC 3461)"
	if code != exitUnavailable || !strings.Contains(errText, want) {
		t.Errorf("exit %d, %q; want %d, %q", code, errText, exitUnavailable, want)
	}
	<-done
	for _, l := range p.Got {
		if strings.HasPrefix(l, "MAIL") {
			t.Errorf("sent %q", l)
		}
	}
}

// Flag values that could inject a header or a command are refused before
// anything is read or sent, each with a message that says why.
func TestSendRefusesInjection(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--header", "X-A: b\r\nBcc: x@example.test"}, `--header "X-A: b\r\nBcc: x@example.test": control character '\r' in the value: a header field is one line`},
		{[]string{"--header", "X A: b"}, `--header "X A: b": character ' ' not allowed in a field name (RFC 5322 section 2.2)`},
		{[]string{"--header", "novalue"}, `--header "novalue": needs Name: value`},
		{[]string{"--header", "Subject: Grüße"}, `character 'ü' is not US-ASCII`},
		{[]string{"--helo", "a\r\nRSET"}, `--helo "a\r\nRSET": not a domain name or an address literal such as [192.0.2.1]`},
		{[]string{"--helo", "bücher.example"}, `an EHLO name is US-ASCII`},
		{[]string{"-F", "A\nBcc: x"}, `--from-name "A\nBcc: x": control characters cannot go into a From field`},
		{[]string{"-N", "never,delay"}, "NEVER cannot be combined with other values"},
		{[]string{"-R", "body"}, `--dsn-return: MAIL FROM: RET must be FULL or HDRS, not "body"`},
		{[]string{"-B", "BINARYMIME"}, `--body-type (-B) "BINARYMIME": 7BIT or 8BITMIME`},
	} {
		args := append([]string{"--server", "127.0.0.1:1", "-f", "a@example.test", "b@example.test"}, tc.args...)
		code, errText := runSendStdin(t, "Subject: x\r\n\r\nx\r\n", args...)
		if code != exitUsage || !strings.Contains(errText, tc.want) {
			t.Errorf("%q: exit %d, %q; want %d, %q", tc.args, code, errText, exitUsage, tc.want)
		}
	}
}

// Run as "sendmail", the binary is send with sendmail's arguments, and
// takes its server from the account in $XDG_CONFIG_HOME/mailsec/config:
// what cron runs (its exact arguments), with the message on stdin.
func TestBinaryNamedSendmail(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	s := startSink(t)
	dir := t.TempDir()
	bin := filepath.Join(dir, "sendmail")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	_, port, _ := net.SplitHostPort(s.addr)
	cfg := filepath.Join(dir, "config", "mailsec")
	os.MkdirAll(cfg, 0o700)
	conf := "defaults\ntls on\ntls_trust_file " + s.caFile + "\n\naccount local\nhost localhost\nport " + port +
		"\nfrom cron@example.test\n\naccount default : local\n"
	if err := os.WriteFile(filepath.Join(cfg, "config"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root@example.test")
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"))
	cmd.Stdin = strings.NewReader("Subject: Cron <root@host> run-parts\n\nall done\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sendmail: %v\n%s", err, out)
	}
	env, _, got := s.last(t)
	if env.From != "cron@example.test" || !reflect.DeepEqual(env.To, []string{"root@example.test"}) {
		t.Errorf("envelope from %q to %q", env.From, env.To)
	}
	if want := "Subject: Cron <root@host> run-parts\r\nFrom: CronDaemon <cron@example.test>\r\n\r\nall done\r\n"; got != want {
		t.Errorf("stored\n%q\nwant\n%q", got, want)
	}
}

// Without --server and without a configuration file, the error says where
// the sendmail interface looks for its server.
func TestSendWithoutServerNamesTheConfigFile(t *testing.T) {
	code, errText := runSendStdin(t, "From: a@example.test\r\nTo: b@example.test\r\n\r\nx\r\n", "-t")
	want := "--server HOST[:PORT] is required, or a default account in " +
		filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "mailsec", "config") + ", "
	if code != exitUsage || !strings.Contains(errText, want) {
		t.Errorf("exit %d, %q; want %d, %q", code, errText, exitUsage, want)
	}
}

// Without -t the address fields are not parsed: cron's "To: root" is no
// address and must not stop the message. The sender then comes from a
// From field with a comment, as cron writes it.
func TestSendmailCronHeader(t *testing.T) {
	msg := "From: cron@example.test (Cron Daemon)\r\nTo: root\r\nSubject: job\r\n\r\nout\r\n"
	env, _, got := sendToSink(t, msg, "-i", "root@example.test")
	if env.From != "cron@example.test" || got != msg {
		t.Errorf("envelope from %q, stored %q", env.From, got)
	}
}
