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
	io.Copy(io.Discard, os.Stdin)
	st, _ := s.Close()
	fmt.Printf("%d %d\n", st.Messages, st.Bytes)
	os.Exit(0)
}

// Spawn starts a sink in a child process running this program's own
// executable, which must call RunChildIfRequested at start.
func Spawn(cfg Config) (*Sink, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	js, _ := json.Marshal(cfg)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), childEnv+"="+string(js))
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
	fail := func(err error) (*Sink, error) {
		stdin.Close()
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	r := bufio.NewReader(stdout)
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
		stdin.Close()
		var st Stats
		_, serr := fmt.Fscan(r, &st.Messages, &st.Bytes)
		werr := cmd.Wait()
		if serr != nil {
			return st, fmt.Errorf("sink child stats: %v", serr)
		}
		return st, werr
	}
	return s, nil
}
