package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/queue"
	"github.com/mailsec/mailsec/smtp"
)

// Server text received before TLS is marked in the --json error message
// and in probe's output, since anyone on the path could have written it.

const spoof = "call +1-555-0100 to restore service"

func TestJSONErrorMarksCleartextReply(t *testing.T) {
	addr, _, done := wiretest.Scripted(t, func(p *wiretest.Peer) {
		p.Send("220 mx.test\r\n")
		p.Expect("EHLO")
		p.Send("250-mx.test\r\n250 STARTTLS\r\n")
		p.Expect("STARTTLS")
		p.Send("454 4.7.0 " + spoof + "\r\n")
		p.Expect("QUIT")
		p.Send("221 bye\r\n")
	})
	_, err := smtp.Dial(context.Background(), addr, &smtp.Options{LocalName: "client.test"})
	<-done
	j, _ := json.Marshal(toJSONError(err))
	var je struct {
		Message string `json:"message"`
		Reply   struct {
			Channel string `json:"channel"`
		} `json:"reply"`
	}
	if err := json.Unmarshal(j, &je); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(je.Message, spoof+" (unverified server text, received before TLS)") || je.Reply.Channel != "cleartext" {
		t.Errorf("JSON error %s does not mark the cleartext reply", j)
	}
}

func TestProbeMarksCleartextText(t *testing.T) {
	peer := func() string {
		addr, _, _ := wiretest.Scripted(t, func(p *wiretest.Peer) {
			p.Send("220 mx.test " + spoof + "\r\n")
			p.Expect("EHLO")
			p.Send("250-mx.test\r\n250 8BITMIME\r\n")
			p.Expect("QUIT")
			p.Send("221 bye\r\n")
		})
		return addr
	}
	out, _ := runFresh(t, probeCmd(), "probe", "--server", peer(), "--timeout", "3s")
	const mark = " (unverified server text, received before TLS)"
	if !strings.Contains(out, "greeting  mx.test "+spoof+mark+"\n") || !strings.Contains(out, "before TLS: 8BITMIME"+mark+"\n") {
		t.Errorf("probe output does not mark the cleartext text:\n%s", out)
	}
	js, _ := runFresh(t, probeCmd(), "probe", "--server", peer(), "--timeout", "3s", "--json")
	var res struct {
		GreetingChannel string `json:"greeting_channel"`
		BeforeTLS       struct {
			Channel string `json:"channel"`
		} `json:"before_tls"`
	}
	if err := json.Unmarshal([]byte(js), &res); err != nil || res.GreetingChannel != "cleartext" || res.BeforeTLS.Channel != "cleartext" {
		t.Errorf("probe --json does not say the text came in cleartext (%v):\n%s", err, js)
	}
}

func TestQueueOutcomeMarksCleartextReply(t *testing.T) {
	rep := &mailsec.Reply{Code: 451, Enhanced: "4.7.1", Lines: []string{spoof}, Channel: mailsec.ChannelCleartext}
	got := outcomeText(&queue.Outcome{Host: "mx.test", Addr: "127.0.0.1", Reply: rep})
	if !strings.Contains(got, spoof+" "+mailsec.ChannelCleartext.Mark()) {
		t.Errorf("outcome %q lacks the cleartext mark", got)
	}
	rep.Channel = mailsec.ChannelVerified
	if got := outcomeText(&queue.Outcome{Reply: rep}); strings.Contains(got, "unverified") {
		t.Errorf("verified reply marked: %q", got)
	}
}
