package smtp

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
)

// expectLine reads one command and fails unless it is exactly want.
func expectLine(p *wiretest.Peer, want string) {
	if got := p.Expect(want); got != want {
		p.T.Errorf("server: got %q, want exactly %q", got, want)
	}
}

// TestDSNParametersOnTheWire checks the exact MAIL and RCPT lines the typed
// options produce with a server offering DSN and 8BITMIME (RFC 3461
// section 4, RFC 6152 section 2).
func TestDSNParametersOnTheWire(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250-DSN\r\n250 8BITMIME\r\n")
		expectLine(p, "MAIL FROM:<s@x.test> BODY=8BITMIME RET=HDRS ENVID=q+2Bid+3D1")
		p.Send("250 ok\r\n")
		expectLine(p, "RCPT TO:<a@x.test> NOTIFY=SUCCESS,FAILURE,DELAY")
		p.Send("250 ok\r\n")
		expectLine(p, "RCPT TO:<b@x.test> NOTIFY=SUCCESS,FAILURE,DELAY")
		p.Send("250 ok\r\n")
		p.Expect("DATA")
		p.Send("354 go\r\n")
		readData(p)
		p.Send("250 2.0.0 queued\r\n")
		expectLine(p, "MAIL FROM:<s@x.test> BODY=7BIT")
		p.Send("250 ok\r\n")
		expectLine(p, "RCPT TO:<a@x.test> NOTIFY=NEVER")
		p.Send("250 ok\r\n")
		p.Expect("DATA")
		p.Send("354 go\r\n")
		readData(p)
		p.Send("250 2.0.0 queued\r\n")
	})
	c := dialPlain(t, addr)
	ctx := context.Background()
	_, err := c.Send(ctx, "s@x.test", []string{"a@x.test", "b@x.test"}, strings.NewReader("x\n"), &MailOptions{
		Body: Body8BitMIME, Ret: RetHeaders, EnvID: "q+id=1",
		Notify: NotifyDelay | NotifySuccess | NotifyFailure,
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Send(ctx, "s@x.test", []string{"a@x.test"}, strings.NewReader("x\n"),
		&MailOptions{Body: Body7Bit, Notify: NotifyNever}); err != nil {
		t.Fatal(err)
	}
	<-done
}

// TestBadOptionsRefusedBeforeSending checks that every combination the
// RFCs do not allow is refused with a message naming it, before a single
// command is sent, and that DSN with a server not offering it is refused
// as unsupported rather than silently dropped.
func TestBadOptionsRefusedBeforeSending(t *testing.T) {
	cases := []struct {
		name string
		ehlo string
		o    MailOptions
		code mailsec.Code
		msg  string
	}{
		{"never with others", "250 DSN\r\n", MailOptions{Notify: NotifyNever | NotifyFailure}, mailsec.Config,
			"NOTIFY=NEVER,FAILURE: NEVER cannot be combined with other values (RFC 3461 section 4.1)"},
		{"unknown notify bits", "250 DSN\r\n", MailOptions{Notify: NotifySuccess | 0x40}, mailsec.Config,
			"NOTIFY set SUCCESS,0x40 has bits that are not NEVER, SUCCESS, FAILURE or DELAY"},
		{"bad ret", "250 DSN\r\n", MailOptions{Ret: "ALL"}, mailsec.Config, `RET must be FULL or HDRS, not "ALL"`},
		{"bad body", "250 8BITMIME\r\n", MailOptions{Body: "BINARYMIME"}, mailsec.Config,
			`BODY must be 7BIT or 8BITMIME, not "BINARYMIME"`},
		{"envid control", "250 DSN\r\n", MailOptions{EnvID: "a\r\nRSET"}, mailsec.Config,
			`ENVID "a\r\nRSET" has a character that is not printable US-ASCII (RFC 3461 section 4.4)`},
		{"envid long", "250 DSN\r\n", MailOptions{EnvID: strings.Repeat("+", 34)}, mailsec.Config,
			"ENVID is 102 characters once encoded, more than 100 (RFC 3461 section 4.4)"},
		{"no DSN", "250 8BITMIME\r\n", MailOptions{Ret: RetFull}, mailsec.Unsupported,
			"DSN parameters given but the server does not offer DSN (RFC 3461)"},
		{"no 8BITMIME", "250 DSN\r\n", MailOptions{Body: Body8BitMIME}, mailsec.Unsupported, "server does not offer 8BITMIME"},
		{"orcpt without type", "250 DSN\r\n", MailOptions{Recipients: map[string]RcptOptions{"a@x.test": {ORcpt: "a@x.test"}}}, mailsec.Config,
			`ORCPT "a@x.test" is not "type;xtext" (RFC 3461 section 4.2)`},
		{"orcpt type with space", "250 DSN\r\n", MailOptions{Recipients: map[string]RcptOptions{"a@x.test": {ORcpt: "rfc 822;a@x.test"}}}, mailsec.Config,
			`is not "type;xtext"`},
		{"orcpt not xtext", "250 DSN\r\n", MailOptions{Recipients: map[string]RcptOptions{"a@x.test": {ORcpt: "rfc822;a+tag@x.test"}}}, mailsec.Config,
			`is not "type;xtext"`},
		{"orcpt injection", "250 DSN\r\n", MailOptions{Recipients: map[string]RcptOptions{"a@x.test": {ORcpt: "rfc822;a@x.test\r\nRCPT TO:<evil@y.test>"}}}, mailsec.Config,
			`is not "type;xtext"`},
		{"orcpt truncated hex", "250 DSN\r\n", MailOptions{Recipients: map[string]RcptOptions{"a@x.test": {ORcpt: "rfc822;a+2"}}}, mailsec.Config,
			`is not "type;xtext"`},
		{"never with others per recipient", "250 DSN\r\n", MailOptions{DSNIfOffered: true, Recipients: map[string]RcptOptions{"a@x.test": {Notify: NotifyNever | NotifySuccess}}}, mailsec.Config,
			"NEVER cannot be combined"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, p, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
				greet(p, "250-mx.test\r\n"+tc.ehlo)
			})
			c := dialPlain(t, addr)
			_, err := c.Send(context.Background(), "s@x.test", []string{"a@x.test"}, strings.NewReader("x\n"), &tc.o)
			codeIs(t, err, tc.code)
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q, want it to say %q", err, tc.msg)
			}
			c.Close()
			<-done
			for _, l := range p.Got {
				if strings.HasPrefix(l, "MAIL") {
					t.Errorf("sent %q despite the refusal", l)
				}
			}
		})
	}
}

func TestParseNotify(t *testing.T) {
	for in, want := range map[string]Notify{
		"never":                 NotifyNever,
		"Success, FAILURE":      NotifySuccess | NotifyFailure,
		"delay,failure,success": NotifySuccess | NotifyFailure | NotifyDelay,
	} {
		got, err := ParseNotify(in)
		if err != nil || got != want {
			t.Errorf("ParseNotify(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, msg := range map[string]string{
		"never,success": "NOTIFY=NEVER,SUCCESS: NEVER cannot be combined",
		"failure,later": `NOTIFY value "later" is not NEVER, SUCCESS, FAILURE or DELAY`,
		"":              `NOTIFY value "" is not`,
	} {
		_, err := ParseNotify(in)
		if !errors.Is(err, mailsec.Config) || !strings.Contains(err.Error(), msg) {
			t.Errorf("ParseNotify(%q) error %v, want %q", in, err, msg)
		}
	}
	if got, err := ParseDSNReturn("headers"); got != RetHeaders || err != nil {
		t.Errorf("ParseDSNReturn(headers) = %q, %v", got, err)
	}
	if _, err := ParseDSNReturn("body"); err == nil || !strings.Contains(err.Error(), `not "body"`) {
		t.Errorf("ParseDSNReturn(body) error %v", err)
	}
}

// A relay passes each recipient's own NOTIFY and ORCPT on, the ORCPT as it
// was received (RFC 3461 section 4.2), to a server offering DSN;
// to one without DSN it sends none and delivers anyway (DSNIfOffered), the
// notices being the relay's to give (RFC 3461 section 5.2).
func TestPerRecipientDSNAsARelay(t *testing.T) {
	o := &MailOptions{Ret: RetFull, EnvID: "e1", DSNIfOffered: true, Recipients: map[string]RcptOptions{
		"a@x.test": {Notify: NotifySuccess | NotifyFailure, ORcpt: "rfc822;a+2Btag+3D1@x.test"},
		"b@x.test": {Notify: NotifyNever},
	}}
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250 DSN\r\n")
		expectLine(p, "MAIL FROM:<s@x.test> RET=FULL ENVID=e1")
		p.Send("250 ok\r\n")
		expectLine(p, "RCPT TO:<a@x.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;a+2Btag+3D1@x.test")
		p.Send("250 ok\r\n")
		expectLine(p, "RCPT TO:<b@x.test> NOTIFY=NEVER")
		p.Send("250 ok\r\n")
		expectLine(p, "RCPT TO:<c@x.test>")
		p.Send("250 ok\r\n")
		p.Expect("DATA")
		p.Send("354 go\r\n")
		readData(p)
		p.Send("250 2.0.0 queued\r\n")
	})
	c := dialPlain(t, addr)
	if _, err := c.Send(context.Background(), "s@x.test", []string{"a@x.test", "b@x.test", "c@x.test"}, strings.NewReader("x\n"), o); err != nil {
		t.Fatal(err)
	}
	<-done

	addr, _, done = wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250 mx.test\r\n")
		expectLine(p, "MAIL FROM:<s@x.test>")
		p.Send("250 ok\r\n")
		expectLine(p, "RCPT TO:<a@x.test>")
		p.Send("250 ok\r\n")
		p.Expect("DATA")
		p.Send("354 go\r\n")
		readData(p)
		p.Send("250 2.0.0 queued\r\n")
	})
	c = dialPlain(t, addr)
	if _, err := c.Send(context.Background(), "s@x.test", []string{"a@x.test"}, strings.NewReader("x\n"), o); err != nil {
		t.Fatal(err)
	}
	<-done
}

// Per-recipient options that ask for nothing send nothing, and so need no
// DSN from the server.
func TestEmptyRecipientOptionsNeedNoDSN(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250 mx.test\r\n")
		expectLine(p, "MAIL FROM:<s@x.test>")
		p.Send("250 ok\r\n")
		expectLine(p, "RCPT TO:<a@x.test>")
		p.Send("250 ok\r\n")
		p.Expect("DATA")
		p.Send("354 go\r\n")
		readData(p)
		p.Send("250 2.0.0 queued\r\n")
	})
	c := dialPlain(t, addr)
	o := &MailOptions{Recipients: map[string]RcptOptions{"a@x.test": {}}}
	if _, err := c.Send(context.Background(), "s@x.test", []string{"a@x.test"}, strings.NewReader("x\n"), o); err != nil {
		c.Close() // the script's wait for the data ends with the session
		t.Fatal(err)
	}
	<-done
}
