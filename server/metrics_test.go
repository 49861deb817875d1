package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/smtp"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// A session of each kind, then a scrape: every metric the issue asks for
// shows what happened.
func TestMetricsScrape(t *testing.T) {
	dir := t.TempDir()
	c := testConfig(t, dir)
	c.Metrics = "127.0.0.1:0"
	c.Limits.MaxMessageSize = 4096
	srv, err := Start(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	info := srv.Info()
	if info.MetricsAddr == "" {
		t.Fatal("no metrics address")
	}
	if err := srv.Env().Users.Add("alice", "pw"); err != nil {
		t.Fatal(err)
	}
	addr := map[string]string{}
	for _, l := range info.Listeners {
		addr[l.Kind] = l.Addr
	}
	caPEM, _ := os.ReadFile(info.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost"}

	// Submission: a failed and a good login, one message accepted, one
	// too big.
	dial := func() *smtp.Client {
		sc, err := smtp.Dial(addr["submission"])
		if err != nil {
			t.Fatal(err)
		}
		if err := sc.StartTLS(cfg); err != nil {
			t.Fatal(err)
		}
		return sc
	}
	// net/smtp quits after a failed AUTH.
	if err := dial().Auth(smtp.PlainAuth("", "alice", "wrong", "127.0.0.1")); err == nil {
		t.Fatal("wrong password accepted")
	}
	sc := dial()
	if err := sc.Auth(smtp.PlainAuth("", "alice", "pw", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{"hello\r\n", strings.Repeat(strings.Repeat("x", 60)+"\r\n", 100)} {
		if err := sc.Mail("alice@localhost"); err != nil {
			t.Fatal(err)
		}
		if err := sc.Rcpt("alice@localhost"); err != nil {
			t.Fatal(err)
		}
		w, err := sc.Data()
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, "Subject: m\r\n\r\n"+body)
		err = w.Close()
		if (len(body) > 100) != (err != nil) {
			t.Fatalf("body of %d: %v", len(body), err)
		}
	}
	sc.Quit()

	// POP3S: log in and retrieve the message.
	pc, err := tls.Dial("tcp", addr["pop3s"], cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(pc)
	io.WriteString(pc, "USER alice\r\nPASS pw\r\nRETR 1\r\nQUIT\r\n")
	all, _ := io.ReadAll(r)
	if !strings.Contains(string(all), "hello") {
		t.Fatalf("POP3 session: %q", all)
	}

	resp, err := http.Get("http://" + info.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	text := string(body)
	for metric, want := range map[string]float64{
		`mailsec_connections_total{kind="submission",listener="submission"}`:                   2,
		`mailsec_connections_total{kind="pop3s",listener="pop3s"}`:                             1,
		`mailsec_tls_handshakes_total{listener="submission",mode="starttls",version="TLS1.3"}`: 2,
		`mailsec_tls_handshakes_total{listener="pop3s",mode="implicit",version="TLS1.3"}`:      1,
		`mailsec_auth_total{listener="submission",mechanism="PLAIN",result="failure"}`:         1,
		`mailsec_auth_total{listener="submission",mechanism="PLAIN",result="success"}`:         1,
		`mailsec_auth_total{listener="pop3s",mechanism="USER",result="success"}`:               1,
		`mailsec_messages_total{reason="",result="accepted"}`:                                  1,
		`mailsec_messages_total{reason="size",result="rejected"}`:                              1,
		`mailsec_delivery_seconds_count`:                                                       1,
		`mailsec_pop3_retrievals_total{listener="pop3s"}`:                                      1,
	} {
		if got := sample(text, metric); got != want {
			t.Errorf("%s = %v, want %v", metric, got, want)
		}
	}
	if got := sample(text, "mailsec_received_bytes_total"); got < 4096 {
		t.Errorf("received bytes %v", got)
	}
	if got := sample(text, "process_resident_memory_bytes"); got <= 0 {
		t.Errorf("no RSS: %v", got)
	}
}

// sample returns the value of the metric line named exactly so, or -1.
func sample(text, name string) float64 {
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(text)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v
}

// Metrics are for the local host only.
func TestMetricsLoopbackOnly(t *testing.T) {
	c := testConfig(t, t.TempDir())
	c.Metrics = "0.0.0.0:0"
	if _, err := Start(c, nil); err == nil || !strings.Contains(err.Error(), "loopback") {
		t.Fatalf("non-loopback metrics address accepted: %v", err)
	}
}
