package smtp

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/internal/wiretest"
	"github.com/mailsec/mailsec/sasl"
	"github.com/mailsec/mailsec/security"
)

// recorder is a driver of the caller's own (Uniface lets applications add
// drivers) that logs each step, so the order the security context
// prescribes can be read off a real session. It is supported when the server offers the AUTH
// mechanism named need, as the capabilities stand when it is verified.
type recorder struct {
	name, need string
	log        *[]string
	openErr    error
	closeErr   error
}

func (r *recorder) Name() string { return r.name }
func (r *recorder) Supported(c security.Caps, _ sasl.ConnState) bool {
	*r.log = append(*r.log, "verify "+r.name)
	return r.need == "" || c.HasAuth(r.need)
}
func (r *recorder) Open(_ context.Context, c security.Conn) error {
	*r.log = append(*r.log, fmt.Sprintf("open %s tls=%v", r.name, c.State().TLS != nil))
	return r.openErr
}
func (r *recorder) Close(context.Context, security.Conn) error {
	*r.log = append(*r.log, "close "+r.name)
	return r.closeErr
}
func (r *recorder) Info() map[string]string { return map[string]string{"by": "recorder"} }

// tlsRecorder wraps the real STARTTLS driver to log its steps too.
type tlsRecorder struct {
	recorder
	real security.Driver
}

func (r *tlsRecorder) StartsTLS() {}
func (r *tlsRecorder) Supported(c security.Caps, s sasl.ConnState) bool {
	r.recorder.Supported(c, s)
	return r.real.Supported(c, s)
}
func (r *tlsRecorder) Open(ctx context.Context, c security.Conn) error {
	*r.log = append(*r.log, "open "+r.name)
	return r.real.Open(ctx, c)
}

// tlsServer offers STARTTLS and AUTH X-PLAIN in plain text and AUTH X-TLS
// only under TLS, then runs after on the TLS session.
func tlsServer(t *testing.T, after func(p *wiretest.Peer)) string {
	addr, _, _ := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250-STARTTLS\r\n250 AUTH X-PLAIN\r\n")
		p.Expect("STARTTLS")
		p.Send("220 go ahead\r\n")
		p.StartTLS()
		p.Expect("EHLO")
		p.Send("250-mx.test\r\n250 AUTH X-TLS\r\n")
		after(p)
	})
	return addr
}

func quitOK(p *wiretest.Peer) {
	p.Expect("QUIT")
	p.Send("221 bye\r\n")
}

// Seed 001: verification runs in order and stops at the STARTTLS driver;
// the drivers verified so far are opened; the capabilities are fetched
// again; verification resumes against the new list. A driver needing a
// mechanism offered only under TLS proves the list was fetched again, and
// the close runs in reverse order.
func TestContextSplitsAtSTARTTLS(t *testing.T) {
	var log []string
	addr := tlsServer(t, quitOK)
	sc := &security.Context{}
	sc.Add(&recorder{name: "A", need: "X-PLAIN", log: &log}, security.Mandatory)
	sc.Add(&tlsRecorder{recorder: recorder{name: "STARTTLS", log: &log}, real: security.NewStartTLS()}, security.Mandatory)
	sc.Add(&recorder{name: "B", need: "X-TLS", log: &log}, security.Mandatory)
	sc.Add(&recorder{name: "C", need: "X-PLAIN", log: &log}, security.Optional)
	c, err := Dial(context.Background(), addr, clientOpts(Options{Security: sc}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Quit(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := "verify A|verify STARTTLS|open A tls=false|open STARTTLS|verify B|verify C|open B tls=true|close B|close STARTTLS|close A"
	if got := strings.Join(log, "|"); got != want {
		t.Fatalf("steps\n got %s\nwant %s", got, want)
	}
	rep := sc.Reports()
	if rep[3].Status != security.StatusSkipped || rep[2].Status != security.StatusClosed || rep[2].Info["by"] != "recorder" {
		t.Fatalf("reports %+v", rep)
	}
}

// A mandatory driver the server stops offering after TLS fails the
// context: the plain-text list was discarded, not kept. The drivers
// already opened are closed in reverse order, and a close error does not
// stop the others from closing.
func TestContextUnwindsOnFailure(t *testing.T) {
	var log []string
	addr := tlsServer(t, func(p *wiretest.Peer) {})
	sc := &security.Context{}
	sc.Add(&recorder{name: "A", log: &log, closeErr: errors.New("A cannot close")}, security.Mandatory)
	sc.Add(&tlsRecorder{recorder: recorder{name: "STARTTLS", log: &log}, real: security.NewStartTLS()}, security.Mandatory)
	sc.Add(&recorder{name: "B", log: &log}, security.Mandatory)
	sc.Add(&recorder{name: "D", need: "X-PLAIN", log: &log}, security.Mandatory)
	sc.Add(&recorder{name: "E", log: &log}, security.Mandatory)
	_, err := Dial(context.Background(), addr, clientOpts(Options{Security: sc}))
	codeIs(t, err, mailsec.AuthUnavailable)
	want := "verify A|verify STARTTLS|open A tls=false|open STARTTLS|verify B|verify D|close STARTTLS|close A"
	if got := strings.Join(log, "|"); got != want {
		t.Fatalf("steps\n got %s\nwant %s", got, want)
	}
	var st []security.Status
	for _, r := range sc.Reports() {
		st = append(st, r.Status)
	}
	if fmt.Sprint(st) != "[closed closed pending failed pending]" {
		t.Fatalf("statuses %v", st)
	}
}

// A driver whose Open fails stops the context there; the one opened
// before it in the same batch is closed.
func TestContextOpenErrorStops(t *testing.T) {
	var log []string
	addr, _, _ := wiretest.Scripted(t, func(p *wiretest.Peer) {
		greet(p, "250-mx.test\r\n250 AUTH X-PLAIN\r\n")
	})
	boom := mailsec.Errorf(mailsec.Protocol, "B", nil, "B refuses")
	sc := &security.Context{}
	sc.Add(&recorder{name: "A", log: &log}, security.Mandatory)
	sc.Add(&recorder{name: "B", log: &log, openErr: boom}, security.Mandatory)
	sc.Add(&recorder{name: "C", log: &log}, security.Mandatory)
	_, err := Dial(context.Background(), addr, clientOpts(Options{Security: sc, TLSMode: TLSNone}))
	if !errors.Is(err, boom) {
		t.Fatalf("error %v, want B's", err)
	}
	want := "verify A|verify B|verify C|open A tls=false|open B tls=false|close A"
	if got := strings.Join(log, "|"); got != want {
		t.Fatalf("steps\n got %s\nwant %s", got, want)
	}
}
