package smtpd

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
)

// refusingBackend reads each message whole, then fails with err.
type refusingBackend struct{ err error }

func (b refusingBackend) Deliver(_ context.Context, _ *Envelope, msg io.Reader) error {
	if _, err := io.Copy(io.Discard, msg); err != nil {
		return err
	}
	return b.err
}

// A Backend's error is answered with the reply it carries, checked and
// cleaned; one that carries none is a temporary local error. The same
// for DATA, a single BDAT chunk, and a message of several chunks.
func TestBackendErrorReplies(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"smtpd.Error", &Error{Code: 554, Enhanced: "5.7.1", Message: "Message refused: spam"},
			"554 5.7.1 Message refused: spam"},
		{"wrapped", fmtWrap(&Error{Code: 452, Enhanced: "4.2.2", Message: "Mailbox full"}),
			"452 4.2.2 Mailbox full"},
		{"mailsec.Error", &mailsec.Error{Code: mailsec.SMTPServer, Reply: &mailsec.Reply{Code: 550, Enhanced: "5.1.1",
			Lines: []string{"No such user", "here"}}}, "550-5.1.1 No such user\n550 5.1.1 here"},
		{"plain", errors.New("disk on fire"), "451 4.3.0 Local error in processing, try again later"},
		{"POP3 reply", &mailsec.Error{Code: mailsec.POPServer, Reply: &mailsec.Reply{RespCode: "SYS/TEMP"}},
			"451 4.3.0 Local error in processing, try again later"},
		{"not a failure code", &Error{Code: 250, Enhanced: "2.0.0", Message: "fine"},
			"451 4.3.0 Local error in processing, try again later"},
		{"class mismatch", &Error{Code: 550, Enhanced: "4.1.1", Message: "x"}, "550 5.0.0 x"},
		{"bad status", &Error{Code: 450, Enhanced: "4.x.1", Message: "x"}, "450 4.0.0 x"},
		{"no text", &Error{Code: 554}, "554 5.0.0 Requested action not taken"},
		{"injection", &Error{Code: 550, Enhanced: "5.7.1", Message: "bad\r\n250 2.0.0 OK\x00\xff"},
			"550-5.7.1 bad\n550 5.7.1 250 2.0.0 OK??"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startServer(t, func(s *Server) { s.Backend = refusingBackend{tc.err} })
			c := mxTransaction(e)
			c.cmd("DATA", 354)
			if _, got := c.cmdAny("Subject: t\r\n\r\nhi\r\n."); got != tc.want {
				t.Errorf("DATA: got %q, want %q", got, tc.want)
			}
			c.cmd("MAIL FROM:<x@y.test>", 250)
			c.cmd("RCPT TO:<alice@localhost>", 250)
			c.send(bdatChunk("Subject: t\r\n\r\nhi", true))
			if _, got := c.read(); got != tc.want {
				t.Errorf("BDAT LAST: got %q, want %q", got, tc.want)
			}
			c.cmd("MAIL FROM:<x@y.test>", 250)
			c.cmd("RCPT TO:<alice@localhost>", 250)
			c.send(bdatChunk("Subject: ", false))
			c.expect(250)
			c.send(bdatChunk("t\r\n\r\nhi", true))
			if _, got := c.read(); got != tc.want {
				t.Errorf("BDAT chunks: got %q, want %q", got, tc.want)
			}
			c.cmd("NOOP", 250)
		})
	}
}

// bdatChunk is a BDAT command with its chunk.
func bdatChunk(data string, last bool) string {
	cmd := "BDAT " + strconv.Itoa(len(data))
	if last {
		cmd += " LAST"
	}
	return cmd + "\r\n" + data
}

func fmtWrap(err error) error { return &wrapped{err} }

type wrapped struct{ err error }

func (w *wrapped) Error() string { return "queue: " + w.err.Error() }
func (w *wrapped) Unwrap() error { return w.err }

// submitter opens a session on a Submission or SMTPS listener, under
// TLS, with EHLO helo, logged in as alice.
func (e *testEnv) submitter(k Kind, helo string) *client {
	e.t.Helper()
	c := e.dial(k)
	c.cmd("EHLO "+helo, 250)
	if k != SMTPS {
		c.starttls()
		c.cmd("EHLO "+helo, 250)
	}
	c.cmd("AUTH PLAIN AGFsaWNlAHNlY3JldA==", 235) // alice, "secret"
	return c
}

// waitCanceled waits for what a ctxBackend reports and fails unless its
// context was cancelled.
func waitCanceled(t *testing.T, done chan error, when string) {
	t.Helper()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Backend's context %s: %v", when, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the Backend's context did not end %s", when)
	}
}

// cmdAny sends a line and returns whatever reply comes.
func (c *client) cmdAny(line string) (int, string) {
	c.t.Helper()
	c.send(line + "\r\n")
	return c.read()
}

// checkingBackend refuses senders and recipients on a list, relays for
// authenticated clients, and records what the checks were told.
type checkingBackend struct {
	captureBackend
	seen []string
}

func (b *checkingBackend) CheckSender(_ context.Context, s SessionInfo, from string) error {
	b.seen = append(b.seen, "MAIL "+from+" user="+s.AuthUser+" kind="+s.Kind.String()+" ip="+s.RemoteAddr.String()+
		" helo="+s.Helo)
	switch from {
	case "spoof@localhost":
		return &Error{Code: 553, Enhanced: "5.7.1", Message: "Sender address not owned by you"}
	case "broken@localhost":
		return errors.New("database down")
	}
	return nil
}

func (b *checkingBackend) CheckRecipient(_ context.Context, s SessionInfo, r *Rcpt) error {
	b.seen = append(b.seen, "RCPT "+r.Addr+" box="+r.Mailbox)
	switch {
	case r.Addr == "bob@localhost":
		return &Error{Code: 450, Enhanced: "4.2.1", Message: "Mailbox busy"}
	case r.Mailbox == "" && s.AuthUser == "":
		return ErrRelayDenied
	}
	return nil
}

// The optional checks decide on MAIL and RCPT with the replies they
// return; they are told who the client is and which mailbox a local
// recipient is; a recipient they accept for another domain is relayed.
func TestBackendChecks(t *testing.T) {
	be := &checkingBackend{}
	e := startServer(t, func(s *Server) { s.Backend = be })
	c := e.dial(MX)
	c.cmd("EHLO client.test", 250)
	if _, got := c.cmdAny("MAIL FROM:<spoof@localhost>"); got != "553 5.7.1 Sender address not owned by you" {
		t.Errorf("MAIL: %q", got)
	}
	if _, got := c.cmdAny("MAIL FROM:<broken@localhost>"); got != "451 4.3.0 Local error in processing, try again later" {
		t.Errorf("MAIL with a failing check: %q", got)
	}
	c.cmd("MAIL FROM:<>", 250)
	if _, got := c.cmdAny("RCPT TO:<Bob@localhost>"); got != "450 4.2.1 Mailbox busy" && !strings.Contains(got, "Recipient OK") {
		t.Errorf("RCPT: %q", got)
	}
	if _, got := c.cmdAny("RCPT TO:<bob@localhost>"); got != "450 4.2.1 Mailbox busy" {
		t.Errorf("RCPT bob: %q", got)
	}
	if _, got := c.cmdAny("RCPT TO:<carol@elsewhere.test>"); got != "550 5.7.1 Relay access denied" {
		t.Errorf("RCPT relay: %q", got)
	}
	// An unknown local user never reaches the check.
	c.cmd("RCPT TO:<nobody@localhost>", 550)
	c.cmd("RCPT TO:<alice@example.test>", 250)

	s := e.submitter(Submission, "sub.test")
	s.cmd("MAIL FROM:<alice@localhost>", 250)
	s.cmd("RCPT TO:<carol@elsewhere.test>", 250)
	// An accepted relay recipient still may not be an address literal.
	s.cmd("RCPT TO:<carol@[192.0.2.1]>", 553)
	s.cmd("DATA", 354)
	s.cmd("Subject: t\r\n\r\nhi\r\n.", 250)
	if len(be.envs) != 1 || !be.envs[0].Relayed() || be.envs[0].Rcpts[0].Mailbox != "" {
		t.Fatalf("relayed envelope %+v", be.envs)
	}
	want := []string{
		"MAIL spoof@localhost user= kind=mx ip=127.0.0.1 helo=client.test",
		"MAIL broken@localhost user= kind=mx ip=127.0.0.1 helo=client.test",
		"MAIL  user= kind=mx ip=127.0.0.1 helo=client.test",
		"RCPT Bob@localhost box=bob",
		"RCPT bob@localhost box=bob",
		"RCPT carol@elsewhere.test box=",
		"RCPT alice@example.test box=alice",
		"MAIL alice@localhost user=alice kind=submission ip=127.0.0.1 helo=sub.test",
		"RCPT carol@elsewhere.test box=",
		"RCPT carol@[192.0.2.1] box=",
	}
	if strings.Join(be.seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("checks saw\n%s\nwant\n%s", strings.Join(be.seen, "\n"), strings.Join(want, "\n"))
	}
}

// ctxBackend waits, after reading the message, until its context ends.
type ctxBackend struct{ done chan error }

func (b ctxBackend) Deliver(ctx context.Context, _ *Envelope, msg io.Reader) error {
	if _, err := io.Copy(io.Discard, msg); err != nil {
		<-ctx.Done()
		b.done <- ctx.Err()
		return err
	}
	select {
	case <-ctx.Done():
		b.done <- ctx.Err()
		return ctx.Err()
	case <-time.After(10 * time.Second):
		b.done <- nil
		return nil
	}
}

// The Backend's context ends when Shutdown gives up on a session whose
// delivery hangs, and when the client of a BDAT transfer goes away.
func TestBackendContext(t *testing.T) {
	be := ctxBackend{done: make(chan error, 1)}
	e := startServer(t, func(s *Server) { s.Backend = be })
	c := mxTransaction(e)
	c.cmd("DATA", 354)
	c.send("Subject: t\r\n\r\nhi\r\n.\r\n")
	time.Sleep(50 * time.Millisecond) // the Backend is waiting
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	e.srv.Shutdown(ctx)
	waitCanceled(t, be.done, "with Shutdown")
	if time.Since(start) > 5*time.Second {
		t.Error("Shutdown waited for the Backend")
	}

	e2 := startServer(t, func(s *Server) { s.Backend = be })
	c2 := mxTransaction(e2)
	c2.cmd("EHLO client.test", 250)
	c2.cmd("MAIL FROM:<x@y.test>", 250)
	c2.cmd("RCPT TO:<alice@localhost>", 250)
	c2.send(bdatChunk("Subject: ", false))
	c2.expect(250)
	c2.conn.Close()
	waitCanceled(t, be.done, "with the session")
}
