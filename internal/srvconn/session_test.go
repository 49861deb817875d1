package srvconn

import (
	"bufio"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// toyReply is a reply of the toy protocol: "+ text" or "- text".
type toyReply struct {
	ok, close bool
	text      string
}

func (r *toyReply) WriteReply(w *bufio.Writer) {
	if r.ok {
		w.WriteString("+ " + r.text + "\r\n")
	} else if r.text != "" {
		w.WriteString("- " + r.text + "\r\n")
	}
}
func (r *toyReply) Status() (string, string, string) {
	return map[bool]string{true: "+", false: "-"}[r.ok], "", r.text
}
func (r *toyReply) Refuses() bool { return !r.ok && r.text != "" }
func (r *toyReply) Failed() bool  { return !r.ok }
func (r *toyReply) Closes() bool  { return r.close }

// toy is a line protocol: "ok" and "bad", "quit" and "panic"; lines of
// verb "long" may have 40 octets, others 10.
type toy struct {
	c          *Conn
	dispatched []string
	ended      bool
}

func (p *toy) Greet() bool {
	p.c.Send(&toyReply{ok: true, text: "hello"})
	return true
}

func (p *toy) LineLimit(verb []byte) int {
	if string(verb) == "long" {
		return 40
	}
	return 10
}

func (p *toy) Dispatch(line []byte) Reply {
	p.dispatched = append(p.dispatched, string(line))
	switch verb, _, _ := strings.Cut(string(line), " "); verb {
	case "ok", "long":
		return &toyReply{ok: true, text: "fine"}
	case "quit":
		return &toyReply{ok: true, text: "bye", close: true}
	case "panic":
		panic("a bug")
	}
	return &toyReply{text: "bad"}
}

func (p *toy) Describe(dst, line []byte) []byte {
	verb, _, _ := strings.Cut(string(line), " ")
	return append(dst, verb...)
}

func (p *toy) End() []any {
	p.ended = true
	return nil
}

var toyReplies = Replies{
	Admission:     func(why Refusal) Reply { return &toyReply{text: why.Text()} },
	LineTooLong:   &toyReply{text: "too long"},
	BareLine:      &toyReply{text: "bare"},
	TooManyErrors: &toyReply{text: "errors", close: true},
	Shutdown:      &toyReply{text: "shutdown", close: true},
	Timeout:       &toyReply{text: "timeout", close: true},
	Lost:          &toyReply{close: true},
}

// runToy runs one toy session over net.Pipe with the client's input in
// and returns what the server wrote and the protocol.
func runToy(t *testing.T, s *Server, in string) (string, *toy) {
	t.Helper()
	a, b := net.Pipe()
	p := &toy{c: s.NewConn(a, "toy", false)}
	done := make(chan struct{})
	go func() {
		s.Run(p.c, p)
		close(done)
	}()
	go func() {
		b.Write([]byte(in))
	}()
	b.SetDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(b)
	<-done
	return string(out), p
}

func newToyServer(maxSessions int) *Server {
	s := &Server{}
	s.Init(nil, "toy.test", maxSessions, maxSessions, Config{Pool: NewPool(64, 64), Timeout: time.Second,
		MaxLine: 40, MaxErrors: 3, Replies: toyReplies})
	return s
}

// The loop checks a line's limit for its verb before the protocol parses
// it, answers pipelined lines in order, counts refusals to MaxErrors and
// ends a session with a closing reply.
func TestLoop(t *testing.T) {
	s := newToyServer(10)
	out, p := runToy(t, s, "ok\r\nlong "+strings.Repeat("x", 30)+"\r\nok "+strings.Repeat("y", 10)+"\r\nok\nquit\r\nquit\r\nok\r\n")
	want := "+ hello\r\n+ fine\r\n+ fine\r\n- too long\r\n- bare\r\n+ bye\r\n"
	if out != want {
		t.Errorf("wrote %q, want %q", out, want)
	}
	if len(p.dispatched) != 3 || !p.ended {
		t.Errorf("dispatched %q, ended %v", p.dispatched, p.ended)
	}
	out, _ = runToy(t, s, "bad\r\nbad\r\nok\r\nbad\r\nok\r\n")
	if want := "+ hello\r\n- bad\r\n- bad\r\n+ fine\r\n- bad\r\n- errors\r\n"; out != want {
		t.Errorf("error limit: wrote %q, want %q", out, want)
	}
}

// A panic in a handler ends its session only: End still runs, the
// session is released, and the server goes on.
func TestLoopPanic(t *testing.T) {
	s := newToyServer(1)
	out, p := runToy(t, s, "ok\r\npanic\r\nok\r\n")
	if out != "+ hello\r\n" || !p.ended {
		t.Errorf("wrote %q, ended %v", out, p.ended)
	}
	if out, _ := runToy(t, s, "quit\r\n"); out != "+ hello\r\n+ bye\r\n" {
		t.Errorf("the next session (max 1) got %q", out)
	}
}

// A session over the limit gets the protocol's admission refusal, unless
// its listener speaks implicit TLS; a session of a server shutting down
// gets the Shutdown reply.
func TestLoopAdmission(t *testing.T) {
	s := newToyServer(1)
	a, b := net.Pipe()
	hold := &toy{c: s.NewConn(a, "toy", false)}
	go s.Run(hold.c, hold)
	br := bufio.NewReader(b)
	if l, _ := br.ReadString('\n'); l != "+ hello\r\n" {
		t.Fatalf("first session: %q", l)
	}
	if out, _ := runToy(t, s, ""); out != "- Too many connections, try again later\r\n" {
		t.Errorf("second session: %q", out)
	}
	c, d := net.Pipe()
	quiet := &toy{c: s.NewConn(c, "toy", true)}
	go s.Run(quiet.c, quiet)
	d.SetDeadline(time.Now().Add(5 * time.Second))
	if out, _ := io.ReadAll(d); len(out) != 0 {
		t.Errorf("implicit TLS refusal wrote %q", out)
	}
	go s.Shutdown(t.Context())
	if l, _ := br.ReadString('\n'); l != "- shutdown\r\n" {
		t.Errorf("at shutdown: %q", l)
	}
}
