package sink

import (
	"bufio"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
)

// childEnv carries the JSON Config to a child process started by Spawn.
const childEnv = "MAILSEC_BENCH_SINK"

// RunChildIfRequested turns this process into a sink when Spawn started it:
// it serves until its standard input closes, prints the Stats and exits.
// Programs that use Spawn must call it first thing in main (or TestMain);
// otherwise it returns at once.
func RunChildIfRequested() {
	v, ok := os.LookupEnv(childEnv)
	if !ok {
		return
	}
	var cfg Config
	if err := json.Unmarshal([]byte(v), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(2)
	}
	s, err := Start(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sink:", err)
		os.Exit(2)
	}
	// Line 1: the address; then the certificate in PEM.
	fmt.Printf("%s\n%s", s.Addr, s.pem)
	WaitForParent()
	st, _ := s.Close()
	fmt.Printf("%d %d\n", st.Messages, st.Bytes)
	os.Exit(0)
}

// Spawn starts a sink in a child process running this program's own
// executable, which must call RunChildIfRequested at start.
func Spawn(cfg Config) (*Sink, error) {
	js, _ := json.Marshal(cfg)
	c, err := StartChild(childEnv + "=" + string(js))
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*Sink, error) {
		c.Kill()
		return nil, err
	}
	r := c.Out
	addr, err := r.ReadString('\n')
	if err != nil {
		return fail(fmt.Errorf("sink child: %v", err))
	}
	var pemText strings.Builder
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return fail(fmt.Errorf("sink child: %v", err))
		}
		pemText.WriteString(l)
		if strings.HasPrefix(l, "-----END") {
			break
		}
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(pemText.String())) {
		return fail(fmt.Errorf("sink child: no certificate"))
	}
	s := &Sink{Addr: strings.TrimSpace(addr), RootCAs: pool, pem: []byte(pemText.String())}
	s.close = func() (Stats, error) {
		c.Stop()
		var st Stats
		_, serr := fmt.Fscan(r, &st.Messages, &st.Bytes)
		werr := c.Wait()
		if serr != nil {
			return st, fmt.Errorf("sink child stats: %v", serr)
		}
		return st, werr
	}
	return s, nil
}

// Child is a copy of this program's own executable serving for a
// benchmark in its own process, so that the server's CPU time and garbage
// are not charged to the client. It serves until its standard input
// closes (see WaitForParent) and writes what the parent must know, such
// as its addresses, to its standard output.
type Child struct {
	// Out reads the child's standard output.
	Out   *bufio.Reader
	cmd   *exec.Cmd
	stdin io.WriteCloser
}

// StartChild starts this program's own executable with env (KEY=VALUE
// entries) added to its environment, by which its main must recognise
// that it is to serve; its standard error is this process's.
func StartChild(env ...string) (*Child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &Child{Out: bufio.NewReader(stdout), cmd: cmd, stdin: stdin}, nil
}

// Pid is the child's process ID.
func (c *Child) Pid() int { return c.cmd.Process.Pid }

// Stop closes the child's standard input, which tells it to shut down;
// what it prints then can still be read from Out before Wait.
func (c *Child) Stop() { c.stdin.Close() }

// Wait waits for the child to exit; it closes Out.
func (c *Child) Wait() error { return c.cmd.Wait() }

// Kill ends a child that did not start serving.
func (c *Child) Kill() {
	c.stdin.Close()
	c.cmd.Process.Kill()
	c.cmd.Wait()
}

// WaitForParent blocks, in a child, until the parent calls Stop (or
// exits): the parent closing this process's standard input is the signal
// to shut down.
func WaitForParent() { io.Copy(io.Discard, os.Stdin) }
