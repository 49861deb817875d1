package mailsec

import (
	"encoding/json"
	"testing"
)

func TestErrorMarksUnverifiedText(t *testing.T) {
	reply := func(ch Channel) *Error {
		return &Error{Code: SMTPServer, Op: "STARTTLS", Reply: &Reply{Code: 454, Enhanced: "4.7.0", Lines: []string{"call +1-555-0100"}, Channel: ch}}
	}
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{reply(ChannelCleartext), "STARTTLS: the SMTP server reported an error: server said 454 4.7.0 call +1-555-0100 (unverified server text, received before TLS)"},
		{reply(ChannelUnverifiedTLS), "STARTTLS: the SMTP server reported an error: server said 454 4.7.0 call +1-555-0100 (unverified server text, TLS without verification)"},
		{reply(ChannelVerified), "STARTTLS: the SMTP server reported an error: server said 454 4.7.0 call +1-555-0100"},
		{&Error{Code: Protocol, Op: "EHLO", Detail: `malformed reply line "call +1-555-0100"`, Channel: ChannelCleartext},
			`EHLO: malformed reply line "call +1-555-0100" (unverified server text, received before TLS)`},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("got  %q\nwant %q", got, tc.want)
		}
	}
}

func TestChannelJSON(t *testing.T) {
	for _, ch := range []Channel{ChannelCleartext, ChannelUnverifiedTLS} {
		b, err := json.Marshal(&Reply{Code: 454, Channel: ch})
		if err != nil {
			t.Fatal(err)
		}
		var r Reply
		if err := json.Unmarshal(b, &r); err != nil || r.Channel != ch {
			t.Errorf("%s: round trip %s gave %v (%v)", ch, b, r.Channel, err)
		}
	}
	if b, _ := json.Marshal(&Reply{Code: 250}); string(b) != `{"code":250}` {
		t.Errorf("verified reply %s names a channel", b)
	}
	var r Reply
	if err := json.Unmarshal([]byte(`{"channel":"bogus"}`), &r); err == nil {
		t.Error("an unknown channel name was accepted")
	}
}
