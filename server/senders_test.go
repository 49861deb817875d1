package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/smtp"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
)

// startSenders starts a server whose submission listener is for users
// alice and bob of localhost and example.test, with tune applied to its
// configuration, and returns it with the listeners' addresses by kind.
func startSenders(t *testing.T, tune func(*Config)) (*Server, map[string]string) {
	t.Helper()
	c := testConfig(t, t.TempDir())
	c.Domains = []string{"localhost", "example.test"}
	c.Relay.Resolver = "127.0.0.1:1" // never asked: nothing is delivered
	if tune != nil {
		tune(c)
	}
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	srv, err := Start(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })
	for _, u := range []string{"alice", "bob"} {
		if err := srv.Env().Users.Add(u, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	addrs := map[string]string{}
	for _, l := range srv.Info().Listeners {
		addrs[l.Kind] = l.Addr
	}
	return srv, addrs
}

// login opens an SMTP session on addr, under TLS, logged in as user
// unless user is "".
func login(t *testing.T, srv *Server, addr, user string) *smtp.Client {
	t.Helper()
	ca, err := os.ReadFile(srv.Info().CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "localhost"}); err != nil {
		t.Fatal(err)
	}
	if user != "" {
		if err := c.Auth(smtp.PlainAuth("", user, "pw", "127.0.0.1")); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// reply is the text of an SMTP error as the server sent it, "250" for none.
func reply(err error) string {
	var te *textproto.Error
	switch {
	case err == nil:
		return "250"
	case errors.As(err, &te):
		return strconv.Itoa(te.Code) + " " + te.Msg
	}
	return err.Error()
}

// send runs one transaction by DATA and returns the final reply.
func send(c *smtp.Client, from, to, msg string) string {
	if err := c.Mail(from); err != nil {
		return reply(err)
	}
	if err := c.Rcpt(to); err != nil {
		return reply(err)
	}
	w, err := c.Data()
	if err != nil {
		return reply(err)
	}
	w.Write([]byte(msg))
	return reply(w.Close())
}

// sendBDAT runs one transaction with a single BDAT LAST chunk.
func sendBDAT(c *smtp.Client, from, to, msg string) string {
	c.Reset()
	if err := c.Mail(from); err != nil {
		return reply(err)
	}
	if err := c.Rcpt(to); err != nil {
		return reply(err)
	}
	fmt.Fprintf(c.Text.W, "BDAT %d LAST\r\n%s", len(msg), msg)
	c.Text.W.Flush()
	_, _, err := c.Text.ReadResponse(250)
	if err != nil {
		return reply(err)
	}
	return "250"
}

// By default a submitter sends only as their own addresses (user@ each
// local domain, and the configured aliases): another envelope sender is
// refused at MAIL FROM with 553 5.7.1, another From header address at the
// end of the data with 550 5.7.1, and nothing is stored or queued. The
// null sender is allowed; the MX listener checks nothing.
func TestSenderLoginMismatch(t *testing.T) {
	srv, addrs := startSenders(t, func(c *Config) {
		c.Submission.Aliases = map[string][]string{"alice": {"Sales@Example.com", "@team.test"}}
	})
	c := login(t, srv, addrs["submission"], "alice")
	for from, want := range map[string]string{
		"ceo@example.com":    "553 5.7.1 <ceo@example.com>: Sender address rejected: not owned by user alice",
		"bob@localhost":      "553 5.7.1 <bob@localhost>: Sender address rejected: not owned by user alice",
		"alice@elsewhere":    "553 5.7.1 <alice@elsewhere>: Sender address rejected: not owned by user alice",
		"Alice@LOCALHOST":    "250",
		"alice@example.test": "250",
		"sales@example.com":  "250",
		"anyone@team.test":   "250",
		"":                   "250",
	} {
		if got := reply(c.Mail(from)); got != want {
			t.Errorf("MAIL FROM:<%s>: %q, want %q", from, got, want)
		}
		c.Reset()
	}
	const complete = "Date: Thu, 03 Dec 2026 15:00:00 +0000\r\nMessage-ID: <m@x>\r\nSubject: s\r\n\r\nbody\r\n"
	for _, tc := range []struct{ from, header, to, want string }{
		{"alice@localhost", "Bob <bob@localhost>", "bob@localhost",
			"550 5.7.1 <bob@localhost>: From header address rejected: not owned by user alice"},
		{"alice@localhost", "Alice <alice@localhost>, Eve <eve@example.test>", "bob@localhost",
			"550 5.7.1 <eve@example.test>: From header address rejected: not owned by user alice"},
		{"", "=?iso-2022-jp?B?GyRCJUYlOSVIGyhC?= <ceo@example.com>", "carol@far.test",
			"550 5.7.1 <ceo@example.com>: From header address rejected: not owned by user alice"},
		{"alice@localhost", "<<<", "bob@localhost",
			"550 5.7.1 From header field cannot be parsed (RFC 5322 section 3.6.2), so its addresses cannot be checked"},
	} {
		msg := "From: " + tc.header + "\r\n" + complete
		if got := send(c, tc.from, tc.to, msg); got != tc.want {
			t.Errorf("DATA with From: %s: %q, want %q", tc.header, got, tc.want)
		}
		if got := sendBDAT(c, tc.from, tc.to, msg); got != tc.want {
			t.Errorf("BDAT with From: %s: %q, want %q", tc.header, got, tc.want)
		}
	}
	if ms, _ := srv.Env().Store.List("bob"); len(ms) != 0 {
		t.Errorf("bob got %d refused messages", len(ms))
	}
	if st, err := srv.queue.Stats(context.Background()); err != nil || st.Messages != 0 {
		t.Errorf("refused mail queued: %+v %v", st, err)
	}
	// The user's own addresses, in any case, aliases, and no From at all.
	for _, from := range []string{"Alice <ALICE@example.test>", "sales@example.com, x@team.test"} {
		if got := send(c, "alice@localhost", "bob@localhost", "From: "+from+"\r\n"+complete); got != "250" {
			t.Errorf("From: %s: %q", from, got)
		}
	}
	if got := send(c, "", "bob@localhost", complete); got != "250" {
		t.Errorf("no From: %q", got)
	}
	if ms, _ := srv.Env().Store.List("bob"); len(ms) != 3 {
		t.Errorf("bob got %d messages, want 3", len(ms))
	}

	mx := login(t, srv, addrs["mx"], "")
	if got := send(mx, "ceo@example.com", "alice@localhost", "From: ceo@example.com\r\nSubject: in\r\n\r\nx\r\n"); got != "250" {
		t.Errorf("MX: %q", got)
	}
}

// sender_login_mismatch = "allow" turns both checks off.
func TestSenderLoginMismatchAllow(t *testing.T) {
	srv, addrs := startSenders(t, func(c *Config) { c.Submission.SenderLoginMismatch = "allow" })
	if got := send(login(t, srv, addrs["submission"], "alice"), "ceo@example.com", "bob@localhost",
		"From: ceo@example.com\r\nSubject: s\r\n\r\nx\r\n"); got != "250" {
		t.Errorf("allowed mismatch: %q", got)
	}
}

// A bad [submission] value stops the start, naming the key.
func TestSubmissionConfigErrors(t *testing.T) {
	base := "data_dir = \"d\"\n[[listener]]\naddress = \"127.0.0.1:0\"\nkind = \"mx\"\n"
	for _, tc := range []struct{ set, key string }{
		{"[submission]\nsender_login_mismatch = \"warn\"", "submission.sender_login_mismatch"},
		{"[submission.aliases]\nalice = [\"no-at-sign\"]", "submission.aliases"},
		{"[submission.aliases]\nalice = [\"a b@c\"]", "submission.aliases"},
		{"[submission.aliases]\n\"not a user!\" = [\"a@b\"]", "submission.aliases"},
	} {
		_, err := Parse(base + tc.set + "\n")
		if !errors.Is(err, mailsec.Config) || !strings.Contains(err.Error(), tc.key) {
			t.Errorf("%s: %v", tc.set, err)
		}
	}
	c, err := Parse(base + "[submission.aliases]\nalice = [\"a@b\", \"@c\"]\n")
	if err != nil || c.Submission.SenderLoginMismatch != "refuse" || len(c.Submission.Aliases["alice"]) != 2 {
		t.Errorf("%+v %v", c, err)
	}
	if c := Default(); c.Submission.SenderLoginMismatch != "refuse" {
		t.Errorf("default sender_login_mismatch %q", c.Submission.SenderLoginMismatch)
	}
}

// Local mail whose recipient asked for NOTIFY=SUCCESS is delivered through
// the queue, whose final delivery tells the sender: a "delivered" report
// in the sender's own mailbox (RFC 3464 section 2.3.3).
func TestLocalDeliveryNotifySuccess(t *testing.T) {
	srv, addrs := startSenders(t, nil)
	c := login(t, srv, addrs["submission"], "alice")
	if err := c.Mail("alice@localhost"); err != nil {
		t.Fatal(err)
	}
	id, err := c.Text.Cmd("RCPT TO:<bob@localhost> NOTIFY=SUCCESS")
	if err != nil {
		t.Fatal(err)
	}
	c.Text.StartResponse(id)
	_, _, err = c.Text.ReadResponse(250)
	c.Text.EndResponse(id)
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("From: alice@localhost\r\nSubject: s\r\n\r\nbody\r\n"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		bob, _ := srv.Env().Store.List("bob")
		alice, _ := srv.Env().Store.List("alice")
		if len(bob) == 1 && len(alice) == 1 {
			b, err := os.ReadFile(alice[0].Path)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"Final-Recipient: rfc822; bob@localhost", "Action: delivered", "Status: 2.0.0"} {
				if !strings.Contains(string(b), want) {
					t.Errorf("notice lacks %q:\n%s", want, b)
				}
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("bob has %d messages, alice %d notices", len(bob), len(alice))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
