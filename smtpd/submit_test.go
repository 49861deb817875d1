package smtpd

import (
	"context"
	"errors"
	"io"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"
)

// added matches the fields a submission gets when it lacks them.
var added = regexp.MustCompile(`Date: ([^\r]+)\r\nMessage-ID: <(\d{14}\.[0-9A-F]{20})@mx\.test>\r\n`)

// complete reads msg through a submission reader, one octet at a time
// and whole, and returns the result (the same both ways).
func complete(t *testing.T, msg string) string {
	t.Helper()
	var got []string
	for _, r := range []io.Reader{strings.NewReader(msg), iotest.OneByteReader(strings.NewReader(msg))} {
		s := &submission{r: r, ctx: context.Background(), host: "mx.test"}
		b, err := io.ReadAll(s)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, added.ReplaceAllString(string(b), "[Date and Message-ID]\r\n"))
	}
	if got[0] != got[1] {
		t.Fatalf("read whole and by octets differ: %q, %q", got[0], got[1])
	}
	return got[0]
}

// A submitted message without Date or Message-ID gets them at the end of
// its header section (RFC 6409 sections 8.2, 8.3); one that has them,
// whatever their case, is passed through byte for byte; a Date line in
// the body does not count, and the body is never changed.
func TestSubmissionCompletesHeader(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"Subject: x\r\ndate: Thu, 03 Dec 2026 15:00:00 +0000\r\nMESSAGE-ID: <a@b>\r\n\r\nbody\r\n",
			"Subject: x\r\ndate: Thu, 03 Dec 2026 15:00:00 +0000\r\nMESSAGE-ID: <a@b>\r\n\r\nbody\r\n"},
		{"Subject: x\r\n\r\nDate: in the body\r\nMessage-ID: <body@x>\r\n",
			"Subject: x\r\n[Date and Message-ID]\r\n\r\nDate: in the body\r\nMessage-ID: <body@x>\r\n"},
		{"Subject: a\r\n folded\r\nTo: b\r\n\r\n",
			"Subject: a\r\n folded\r\nTo: b\r\n[Date and Message-ID]\r\n\r\n"},
		// The header ends at a line that is not a field: the empty line
		// goes in after the added fields.
		{"Subject: x\r\nthis is no field\r\nmore\r\n",
			"Subject: x\r\n[Date and Message-ID]\r\n\r\nthis is no field\r\nmore\r\n"},
		{"Subject: only a header\r\n", "Subject: only a header\r\n[Date and Message-ID]\r\n"},
		{"Subject: no CRLF at the end", "Subject: no CRLF at the end\r\n[Date and Message-ID]\r\n"},
		{"", "[Date and Message-ID]\r\n"},
	} {
		if got := complete(t, tc.in); got != tc.want {
			t.Errorf("%q:\n got %q\nwant %q", tc.in, got, tc.want)
		}
	}
	s := &submission{r: strings.NewReader("Message-ID: <x@y>\r\n\r\n"), ctx: context.Background(), host: "mx.test"}
	b, _ := io.ReadAll(s)
	d, rest, ok := strings.Cut(strings.TrimPrefix(string(b), "Message-ID: <x@y>\r\nDate: "), "\r\n")
	if tm, err := mail.ParseDate(d); !ok || err != nil || time.Since(tm) > time.Minute || rest != "\r\n" {
		t.Errorf("only the Date added: %q (%v)", b, err)
	}
}

// Message-IDs are unique.
func TestSubmissionMessageIDsDiffer(t *testing.T) {
	seen := map[string]bool{}
	for range 1000 {
		s := &submission{r: strings.NewReader("\r\n"), ctx: context.Background(), host: "mx.test"}
		b, _ := io.ReadAll(s)
		m := added.FindStringSubmatch(string(b))
		if m == nil || seen[m[2]] {
			t.Fatalf("Message-ID %q", b)
		}
		seen[m[2]] = true
	}
}

// Only the header section is held: the added fields come out before the
// body has been read, so a large body streams.
func TestSubmissionStreams(t *testing.T) {
	pr, pw := io.Pipe()
	s := &submission{r: pr, ctx: context.Background(), host: "mx.test"}
	go pw.Write([]byte("Subject: big\r\n\r\nfirst body line\r\n"))
	var got []byte
	buf := make([]byte, 64)
	deadline := time.After(5 * time.Second)
	for !strings.Contains(string(got), "first body line") {
		done := make(chan struct{})
		var n int
		go func() { n, _ = s.Read(buf); close(done) }()
		select {
		case <-done:
		case <-deadline:
			t.Fatalf("blocked waiting for the rest of the body; got %q", got)
		}
		got = append(got, buf[:n]...)
	}
	pw.Close()
	if !added.Match(got) {
		t.Errorf("got %q", got)
	}
}

// On the Submission and SMTPS listeners, by DATA and BDAT, a message
// without Date and Message-ID gets them; on MX the same message is
// stored as it came.
func TestSubmissionListenersAddFields(t *testing.T) {
	e := startServer(t, nil)
	const msg = "Subject: bare\r\n\r\nbody\r\n"
	for _, k := range []Kind{Submission, SMTPS} {
		c := e.submitter(k, "client.test")
		c.cmd("MAIL FROM:<alice@localhost>", 250)
		c.cmd("RCPT TO:<bob@localhost>", 250)
		c.cmd("DATA", 354)
		c.cmd(msg+".", 250)
		c.cmd("MAIL FROM:<alice@localhost>", 250)
		c.cmd("RCPT TO:<bob@localhost>", 250)
		c.send(bdatChunk("Subject: bare\r\n", false))
		c.expect(250)
		c.send(bdatChunk("\r\nbody\r\n", true))
		c.expect(250)
	}
	m := e.newMail("bob")
	if len(m) != 4 {
		t.Fatalf("bob: %d messages", len(m))
	}
	for _, got := range m {
		_, rest, _ := strings.Cut(got, "\r\nSubject: bare\r\n")
		if !added.MatchString(rest) || !strings.HasSuffix(rest, ">\r\n\r\nbody\r\n") {
			t.Errorf("submitted message not completed: %q", got)
		}
	}

	c := mxTransaction(e)
	c.cmd("DATA", 354)
	c.cmd(msg+".", 250)
	m = e.newMail("alice")
	if len(m) != 1 {
		t.Fatalf("alice: %d messages", len(m))
	}
	if _, rest, _ := strings.Cut(m[0], "\r\nSubject: bare\r\n"); rest != "\r\nbody\r\n" || strings.Contains(m[0], "Message-ID") {
		t.Errorf("MX rewrote the message: %q", m)
	}
}

// fromBackend refuses From addresses other than alice's and records what
// CheckFrom was told.
type fromBackend struct {
	captureBackend
	mu   sync.Mutex
	seen []string
}

func (b *fromBackend) CheckFrom(_ context.Context, s SessionInfo, env *Envelope, from []string) error {
	b.mu.Lock()
	b.seen = append(b.seen, s.Kind.String()+" "+s.AuthUser+" "+env.From+" "+strings.Join(from, ","))
	b.mu.Unlock()
	for _, a := range from {
		if a != "alice@localhost" {
			return errors.New("not alice") // no reply of its own: 550 5.7.1
		}
	}
	return nil
}

// The FromChecker gets the addresses of a submitted message's From
// fields, unfolded, whatever their display names; its refusal refuses
// the message whole, by DATA and by BDAT in chunks, and nothing reaches
// the Backend's store. The MX listener never asks it.
func TestFromChecker(t *testing.T) {
	be := &fromBackend{}
	e := startServer(t, func(s *Server) { s.Backend = be })
	c := e.submitter(Submission, "client.test")
	c.cmd("MAIL FROM:<alice@localhost>", 250)
	c.cmd("RCPT TO:<bob@localhost>", 250)
	c.cmd("DATA", 354)
	if txt := c.cmd("From: =?utf-8?q?Alice?= <alice@localhost>,\r\n Mallory\r\n\t<mallory@evil.test>\r\nSubject: x\r\n\r\nbody\r\n.", 550); txt != "550 5.7.1 From header field refused" {
		t.Errorf("DATA: %q", txt)
	}

	c.cmd("MAIL FROM:<alice@localhost>", 250)
	c.cmd("RCPT TO:<bob@localhost>", 250)
	c.send(bdatChunk("From: mallory@evil.test\r\nSubject: x\r\n\r\n", false))
	code, text := c.read()
	if code == 250 {
		c.send(bdatChunk("body\r\n", true))
		code, text = c.read()
	}
	if want := "550 5.7.1 From header field refused"; text != want {
		t.Errorf("BDAT: %d %q, want %q", code, text, want)
	}
	c.cmd("RSET", 250)
	c.cmd("MAIL FROM:<alice@localhost>", 250)
	c.cmd("RCPT TO:<bob@localhost>", 250)
	c.cmd("DATA", 354)
	c.cmd("From: Alice <alice@localhost>\r\n\r\nok\r\n.", 250)

	mx := mxTransaction(e)
	mx.cmd("DATA", 354)
	mx.cmd("From: mallory@evil.test\r\n\r\nx\r\n.", 250)

	if len(be.envs) != 2 {
		t.Errorf("backend stored %d messages, want 2", len(be.envs))
	}
	want := []string{
		"submission alice alice@localhost alice@localhost,mallory@evil.test",
		"submission alice alice@localhost mallory@evil.test",
		"submission alice alice@localhost alice@localhost",
	}
	if strings.Join(be.seen, "\n") != strings.Join(want, "\n") {
		t.Errorf("CheckFrom saw\n%s\nwant\n%s", strings.Join(be.seen, "\n"), strings.Join(want, "\n"))
	}
}

// allowAll is a FromChecker that accepts every author.
type allowAll struct{}

func (allowAll) CheckFrom(context.Context, SessionInfo, *Envelope, []string) error { return nil }

// A From field folded beyond maxFromField is not held whole: it is
// refused as unreadable.
func TestSubmissionFromBounded(t *testing.T) {
	long := "From: a@b" + strings.Repeat(",\r\n c@d", maxFromField/4) + "\r\n\r\nbody\r\n"
	s := &submission{r: strings.NewReader(long), ctx: context.Background(), host: "mx.test", check: allowAll{}}
	if _, err := io.ReadAll(s); err != errFromUnreadable {
		t.Errorf("err %v", err)
	}
	if len(s.from) > maxFromField {
		t.Errorf("held %d octets of From", len(s.from))
	}
	s = &submission{r: strings.NewReader("From: a@b,\r\n c@d\r\n\r\nbody\r\n"), ctx: context.Background(), host: "mx.test", check: allowAll{}}
	if b, err := io.ReadAll(s); err != nil || !strings.HasSuffix(string(b), "\r\n\r\nbody\r\n") {
		t.Errorf("%q %v", b, err)
	}
}

var (
	addedDate = regexp.MustCompile(`Date: [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4}\r\n`)
	addedID   = regexp.MustCompile(`Message-ID: <\d{14}\.[0-9A-F]{20}@mx\.test>\r\n`)
)

// FuzzSubmission checks that completing a submission only ever adds the
// Date and Message-ID fields and line ends, never loses or reorders an
// octet, and does not depend on how the reads fall.
func FuzzSubmission(f *testing.F) {
	for _, s := range []string{"Subject: x\r\n\r\nbody\r\n", "Date: x\r\n\r\n", "no header\r\n", "Subject: x",
		"A: b\r\n c\r\nMessage-ID: <x>\r\nFrom: a@b\r\n\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		var outs []string
		for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in))} {
			b, err := io.ReadAll(&submission{r: r, ctx: context.Background(), host: "mx.test"})
			if err != nil {
				t.Fatal(err)
			}
			out := addedDate.ReplaceAllString(string(b), "")
			outs = append(outs, addedID.ReplaceAllString(out, ""))
		}
		if outs[0] != outs[1] {
			t.Fatalf("reads change the result: %q, %q", outs[0], outs[1])
		}
		if strings.ReplaceAll(outs[0], "\r\n", "") != strings.ReplaceAll(in, "\r\n", "") {
			t.Fatalf("%q became %q", in, outs[0])
		}
	})
}
