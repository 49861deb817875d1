package pop3

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/sasl"
)

// A POP3S session with USER/PASS: listing, a dot-stuffed message read back
// exactly, DELE and QUIT; the transcript shows TLS arrows and no secret.
func TestImplicitSession(t *testing.T) {
	msg := "Subject: hi\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n"
	stuffed := "Subject: hi\r\n\r\n..leading dot\r\n...two dots\r\n..\r\nend\r\n"
	addr := scripted(t, true, func(s *wiretest.Peer) {
		loginTLS(s, "USER", "UIDL", "TOP")
		s.Expect("STAT")
		s.Send("+OK 2 320\r\n")
		s.Expect("LIST")
		s.Send("+OK 2 messages\r\n1 120\r\n2 200\r\n.\r\n")
		s.Expect("UIDL")
		s.Send("+OK\r\n1 abc\r\n2 d.e\r\n.\r\n")
		s.Expect("RETR 2")
		s.Send("+OK 200 octets\r\n" + stuffed + ".\r\n")
		s.Expect("DELE 2")
		s.Send("+OK\r\n")
		s.Expect("QUIT")
		s.Send("+OK bye\r\n")
	})
	var tr bytes.Buffer
	ctx := context.Background()
	c, err := Dial(ctx, addr, opts(Options{TLSMode: TLSImplicit, Auth: carol, Mechanism: "user", Transcript: &tr}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n, size, err := c.Stat(ctx); err != nil || n != 2 || size != 320 {
		t.Fatalf("STAT %d %d %v", n, size, err)
	}
	list, err := c.List(ctx)
	if err != nil || len(list) != 2 || list[1] != (MsgInfo{2, 200}) {
		t.Fatalf("LIST %v %v", list, err)
	}
	uids, err := c.Uidl(ctx)
	if err != nil || len(uids) != 2 || uids[1].UID != "d.e" {
		t.Fatalf("UIDL %v %v", uids, err)
	}
	b, err := c.Retr(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(b)
	if err != nil || string(got) != msg {
		t.Fatalf("RETR %q %v", got, err)
	}
	if err := c.Dele(ctx, 2); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(tr.String(), carol.Password) {
		t.Errorf("the transcript shows the password:\n%s", tr.String())
	}
	if !strings.Contains(tr.String(), "~> PASS [credentials redacted]") || !strings.Contains(tr.String(), "<~ +OK bye") {
		t.Errorf("transcript:\n%s", tr.String())
	}
}

// The CAPA list learned in plain text is gone after STLS: only what the
// server says under TLS counts (RFC 2595 section 4), and SASL PLAIN goes
// in the initial-response form of RFC 5034.
func TestSTLSRequeriesCapa(t *testing.T) {
	addr := scripted(t, false, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		capa(s, "STLS", "X-PLAIN-ONLY", "SASL LOGIN")
		s.Expect("STLS")
		s.Send("+OK go ahead\r\n")
		s.StartTLS()
		capa(s, "SASL PLAIN SCRAM-SHA-256", "PIPELINING", "UIDL")
		line := s.Expect("AUTH PLAIN ")
		ir, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(line, "AUTH PLAIN "))
		if string(ir) != "\x00carol\x00"+carol.Password {
			s.T.Errorf("initial response %q", ir)
		}
		s.Send("+OK welcome\r\n")
		s.Expect("QUIT")
		s.Send("+OK\r\n")
	})
	ctx := context.Background()
	var tr bytes.Buffer
	c, err := Dial(ctx, addr, opts(Options{Auth: carol, Mechanism: "plain", Transcript: &tr}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Quit(ctx)
	secret := base64.StdEncoding.EncodeToString([]byte("\x00carol\x00" + carol.Password))
	if strings.Contains(tr.String(), secret) || strings.Contains(tr.String(), carol.Password) ||
		!strings.Contains(tr.String(), "~> AUTH PLAIN [credentials redacted]") {
		t.Errorf("transcript:\n%s", tr.String())
	}
	if ok, _ := c.Capability("X-PLAIN-ONLY"); ok {
		t.Error("a capability announced before TLS survived STLS")
	}
	if !c.Pipelining() || c.TLS() == nil {
		t.Errorf("caps %v, TLS %v", c.Capabilities(), c.TLS() != nil)
	}
	if got := c.Caps().Auth; len(got) != 2 || got[0] != "PLAIN" {
		t.Errorf("SASL %v", got)
	}
}

// Octets sent after the +OK to STLS, before the handshake, are a response
// injection: the connection is dropped and no credentials are sent.
func TestSTLSInjection(t *testing.T) {
	addr := scripted(t, false, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		capa(s, "STLS", "USER")
		s.Expect("STLS")
		s.Send("+OK begin TLS\r\n+OK injected\r\n")
		s.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		rest, _ := io.ReadAll(s.R)
		if bytes.Contains(rest, []byte("USER")) || bytes.Contains(rest, []byte("PASS")) {
			s.T.Errorf("credentials sent after an injection: %q", rest)
		}
	})
	_, err := Dial(context.Background(), addr, opts(Options{Auth: carol, Mechanism: "user"}))
	codeIs(t, err, mailsec.Protocol)
}

// Mandatory STLS that the server does not offer stops everything before a
// credential leaves; so does plain text without STLS at all.
func TestNoCredentialsInPlain(t *testing.T) {
	for _, mode := range []TLSMode{TLSStartTLS, TLSNone} {
		addr := scripted(t, false, func(s *wiretest.Peer) {
			s.Send("+OK ready\r\n")
			capa(s, "USER", "SASL PLAIN")
			line := s.Expect("QUIT")
			if line != "QUIT" {
				return
			}
			s.Send("+OK\r\n")
		})
		_, err := Dial(context.Background(), addr, opts(Options{TLSMode: mode, Auth: carol}))
		want := mailsec.StartTLSUnavailable
		if mode == TLSNone {
			want = mailsec.AuthUnavailable
		}
		codeIs(t, err, want)
	}
}

// -ERR keeps its text and RFC 3206 response code.
func TestErrResponseCodes(t *testing.T) {
	for _, tc := range []struct {
		line, code string
		temp       bool
	}{
		{"-ERR [AUTH] Authentication failed.", "AUTH", false},
		{"-ERR [SYS/TEMP] try later", "SYS/TEMP", true},
		{"-ERR [IN-USE] locked", "IN-USE", true},
		{"-ERR no code", "", false},
	} {
		addr := scripted(t, true, func(s *wiretest.Peer) {
			s.Send("+OK ready\r\n")
			capa(s, "USER")
			s.Expect("USER")
			s.Send("+OK\r\n")
			s.Expect("PASS")
			s.Send(tc.line + "\r\n")
			s.Expect("QUIT")
		})
		_, err := Dial(context.Background(), addr, opts(Options{TLSMode: TLSImplicit, Auth: carol}))
		codeIs(t, err, mailsec.POPServer)
		rep := mailsec.ReplyOf(err)
		if rep == nil || rep.RespCode != tc.code || rep.Temporary() != tc.temp || !strings.Contains(err.Error(), tc.line[strings.LastIndexByte(tc.line, ' ')+1:]) {
			t.Errorf("%q: reply %+v, error %v", tc.line, rep, err)
		}
	}
}

// A RETR that ends without its terminating line, the server closing in the
// middle of the message, is an error, never a short message.
func TestRetrWithoutTerminator(t *testing.T) {
	addr := scripted(t, true, func(s *wiretest.Peer) {
		loginTLS(s, "USER")
		s.Expect("RETR 1")
		s.Send("+OK\r\nSubject: cut\r\n\r\nhalf a mess")
	})
	ctx := context.Background()
	c, err := Dial(ctx, addr, opts(Options{TLSMode: TLSImplicit, Auth: carol}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Retr(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(b)
	codeIs(t, err, mailsec.SocketRx)
	if err := c.Noop(ctx); err == nil {
		t.Error("the session is still usable after a broken message")
	}
}

// A LIST size claim of many GiB is recorded, not allocated; a size beyond
// int64 is a protocol error.
func TestListHugeClaim(t *testing.T) {
	addr := scripted(t, true, func(s *wiretest.Peer) {
		loginTLS(s, "USER")
		s.Expect("LIST")
		s.Send("+OK\r\n1 9223372036854775807\r\n2 68719476736\r\n.\r\n")
		s.Expect("LIST")
		s.Send("+OK\r\n1 99999999999999999999999\r\n.\r\n")
	})
	ctx := context.Background()
	c, err := Dial(ctx, addr, opts(Options{TLSMode: TLSImplicit, Auth: carol}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	list, err := c.List(ctx)
	if err != nil || list[1].Size != 64<<30 {
		t.Fatalf("%v %v", list, err)
	}
	_, err = c.List(ctx)
	codeIs(t, err, mailsec.Protocol)
}

// A 100 KiB line is refused after reading a bounded prefix of it, in the
// greeting and inside a multi-line response.
func TestLongLines(t *testing.T) {
	long := strings.Repeat("A", 100<<10)
	addr := scripted(t, true, func(s *wiretest.Peer) {
		s.Send("+OK " + long + "\r\n")
	})
	_, err := Dial(context.Background(), addr, opts(Options{TLSMode: TLSImplicit}))
	codeIs(t, err, mailsec.Protocol)

	addr = scripted(t, true, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		s.Expect("CAPA")
		s.Send("+OK\r\nUSER\r\nX-" + long + "\r\n.\r\n")
	})
	_, err = Dial(context.Background(), addr, opts(Options{TLSMode: TLSImplicit}))
	codeIs(t, err, mailsec.Protocol)
}

// With PIPELINING the RETRs go out before the first reply is read.
func TestPipelinedRetr(t *testing.T) {
	addr := scripted(t, true, func(s *wiretest.Peer) {
		loginTLS(s, "USER", "PIPELINING")
		for _, n := range []string{"1", "2", "3"} {
			s.Expect("RETR " + n)
		}
		s.Send("+OK\r\none\r\n.\r\n-ERR [SYS/PERM] gone\r\n+OK\r\nthree\r\n.\r\n")
		s.Expect("DELE 1")
		s.Expect("DELE 3")
		s.Send("+OK\r\n+OK\r\n")
		s.Expect("QUIT")
		s.Send("+OK\r\n")
	})
	ctx := context.Background()
	c, err := Dial(ctx, addr, opts(Options{TLSMode: TLSImplicit, Auth: carol}))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	err = c.RetrEach(ctx, []int{1, 2, 3}, func(num int, body io.Reader, rerr error) error {
		if rerr != nil {
			got = append(got, mailsec.ReplyOf(rerr).RespCode)
			return nil
		}
		b, err := io.ReadAll(body)
		got = append(got, string(b))
		return err
	})
	if err != nil || strings.Join(got, "|") != "one\r\n|SYS/PERM|three\r\n" {
		t.Fatalf("%q %v", got, err)
	}
	if err := c.DeleEach(ctx, []int{1, 3}); err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
}

// An initial response too long for the 255-octet AUTH line waits for an
// empty challenge (RFC 5034 section 4); a bad challenge is cancelled with "*".
func TestAuthLongInitialResponse(t *testing.T) {
	long := &mailsecCred
	addr := scripted(t, true, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		capa(s, "SASL PLAIN")
		if line := s.Expect("AUTH PLAIN"); line != "AUTH PLAIN" {
			return
		}
		s.Send("+ \r\n")
		s.Expect("")
		s.Send("+ not base64!\r\n")
		s.Expect("*")
		s.Send("-ERR cancelled\r\n")
		s.Expect("QUIT")
	})
	_, err := Dial(context.Background(), addr, opts(Options{TLSMode: TLSImplicit, Auth: long, Mechanism: "PLAIN"}))
	codeIs(t, err, mailsec.Protocol)
}

var mailsecCred = *carol

func init() { mailsecCred.Password = strings.Repeat("p", 300) }

// A command argument with CR or LF could smuggle a second command.
func TestNoCommandInjection(t *testing.T) {
	addr := scripted(t, true, func(s *wiretest.Peer) {
		s.Send("+OK ready\r\n")
		capa(s, "USER")
		s.Conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		if rest, _ := io.ReadAll(s.R); bytes.Contains(rest, []byte("DELE")) {
			s.T.Errorf("smuggled command reached the server: %q", rest)
		}
	})
	cred := *carol
	cred.Username = "carol\r\nDELE 1"
	_, err := Dial(context.Background(), addr, opts(Options{TLSMode: TLSImplicit, Auth: &cred, Mechanism: "user"}))
	codeIs(t, err, mailsec.Data)
}

// APOP digests the greeting's timestamp with the password (RFC 1939
// section 7 gives this very example).
func TestAPOP(t *testing.T) {
	addr := scripted(t, true, func(s *wiretest.Peer) {
		s.Send("+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n")
		capa(s, "USER")
		s.Expect("APOP mrose c4c9334bac560ecc979e58001b3e22fb")
		s.Send("+OK maildrop has 1 message (369 octets)\r\n")
		s.Expect("QUIT")
		s.Send("+OK\r\n")
	})
	ctx := context.Background()
	c, err := Dial(ctx, addr, opts(Options{TLSMode: TLSImplicit, Mechanism: "apop",
		Auth: &sasl.Credentials{Username: "mrose", Password: "tanstaaf"}}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
}

// Seed 002's POP3 proxy convention: the login names the real server.
func TestProxyHostLogin(t *testing.T) {
	addr := scripted(t, true, func(s *wiretest.Peer) {
		s.Send("+OK proxy ready\r\n")
		capa(s, "USER")
		s.Expect("USER carol@pop.real.example")
		s.Send("+OK\r\n")
		s.Expect("PASS")
		s.Send("+OK\r\n")
		s.Expect("QUIT")
		s.Send("+OK\r\n")
	})
	ctx := context.Background()
	c, err := Dial(ctx, addr, opts(Options{TLSMode: TLSImplicit, Auth: carol, ProxyHost: "pop.real.example"}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Fatal(err)
	}
	if carol.Username != "carol" {
		t.Error("the caller's credentials were changed")
	}
}

// A canceled context ends a download in progress with Canceled.
func TestRetrCanceled(t *testing.T) {
	release := make(chan struct{})
	addr := scripted(t, true, func(s *wiretest.Peer) {
		loginTLS(s, "USER")
		s.Expect("RETR 1")
		s.Send("+OK\r\nSubject: slow\r\n")
		<-release
	})
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Dial(ctx, addr, opts(Options{TLSMode: TLSImplicit, Auth: carol}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Retr(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err = io.ReadAll(b)
	codeIs(t, err, mailsec.Canceled)
}
