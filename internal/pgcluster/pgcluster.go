// Package pgcluster runs a private PostgreSQL cluster: made with initdb
// in a temporary directory, listening on a free loopback port, host
// connections authenticated by password (scram-sha-256, superuser
// postgres with a random password), fsync on, and no system service
// involved, so that what uses it is independent of any PostgreSQL the
// machine runs and leaves nothing behind.
//
// It is the mechanics shared by internal/pgtest, which gives each test
// a database on one cluster per test binary, and by the -pg mode of
// bench/relay, which measures mailsec nodes on a database queue. When
// the caller runs as root the server runs as the postgres user, since
// PostgreSQL refuses root.
package pgcluster

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// ErrUnavailable is what the errors of Start match (errors.Is) when
// PostgreSQL cannot run here at all, as opposed to failing to start:
// tests skip on it rather than fail.
var ErrUnavailable = errors.New("PostgreSQL is not available")

// unavailable is an ErrUnavailable that says why, in its own words, so
// that callers can print it as it stands.
type unavailable string

func (u unavailable) Error() string        { return string(u) }
func (u unavailable) Is(target error) bool { return target == ErrUnavailable }

// Options say what differs between the users of a cluster.
type Options struct {
	// TempPattern is the os.MkdirTemp pattern of the cluster's
	// directory, so that a leftover one says whose it was; "" is
	// "pgcluster".
	TempPattern string
	// ServerOptions are postgres command-line options added to those
	// the cluster needs (listen address, port, socket directory,
	// fsync), such as "-c max_connections=300".
	ServerOptions string
}

// Cluster is a running private server. Its methods may be called from
// several goroutines.
type Cluster struct {
	bin      string // directory of initdb, pg_ctl and postgres
	dir      string // the temporary directory: data/, the socket, the log
	port     int
	password string
	opts     Options
	cred     *credential // whom to run PostgreSQL as; nil: as ourselves

	mu       sync.Mutex // serialises pg_ctl runs (Crash, Restart, Close)
	watchdog *exec.Cmd  // stops the cluster when this process ends
	stdin    io.WriteCloser
}

// Start makes and starts a cluster. On error nothing is left running or
// on disk; errors matching ErrUnavailable mean PostgreSQL is not
// installed or cannot be run as another user than root.
func Start(opts Options) (*Cluster, error) {
	c := &Cluster{bin: findBin(), opts: opts}
	if c.bin == "" {
		return nil, unavailable("PostgreSQL (initdb, pg_ctl) is not installed")
	}
	// PostgreSQL refuses to run as root; Debian's package creates the
	// postgres user to run it as.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, unavailable("running as root and there is no postgres user to run PostgreSQL as")
		}
		if c.cred, err = lookupCredential(u); err != nil {
			return nil, err
		}
	}
	if err := c.boot(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// DSN is a URL for connecting to database db as the superuser, password
// included.
func (c *Cluster) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", c.password, c.port, db)
}

// Port is the loopback TCP port the server listens on, for callers that
// build their own connection configuration.
func (c *Cluster) Port() int { return c.port }

// Password is the superuser's password, for callers that keep it out of
// connection strings or give it to roles they create.
func (c *Cluster) Password() string { return c.password }

// Data is the data directory, where postmaster.pid says which process
// the server is.
func (c *Cluster) Data() string { return filepath.Join(c.dir, "data") }

// Crash stops the server as a crash would (immediate shutdown: sessions
// end, no checkpoint, and what was not yet written out of its WAL
// buffers is lost) but keeps the cluster, so that a caller can see what
// its code does while the database is down; Restart brings it back,
// recovering from the WAL on disk.
func (c *Cluster) Crash() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctl("stop", "-m", "immediate")
}

// Restart restarts the server (or starts it after Crash) on the same
// port, as when a database server restarts under a running application.
func (c *Cluster) Restart() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ctl("restart", "-m", "fast", "-o", c.serverOptions())
}

// Close stops the server and removes its directory; the cluster cannot
// be used after. It waits for the watchdog to do it, so that there is
// one way the cluster ends, however the process ends.
func (c *Cluster) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.watchdog != nil {
		c.stdin.Close()
		c.watchdog.Wait()
		c.watchdog = nil
	} else if c.dir != "" {
		os.RemoveAll(c.dir)
	}
	c.dir = ""
}

func (c *Cluster) serverOptions() string {
	o := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=on", c.port, c.dir)
	if c.opts.ServerOptions != "" {
		o += " " + c.opts.ServerOptions
	}
	return o
}

// findBin looks for initdb and pg_ctl in PATH, then in Debian's
// versioned directories, newest first.
func findBin() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		dir := filepath.Dir(p)
		if _, err := os.Stat(filepath.Join(dir, "pg_ctl")); err == nil {
			return dir
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return version(dirs[i]) > version(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

func version(bindir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return n
}

func (c *Cluster) boot() error {
	pattern := c.opts.TempPattern
	if pattern == "" {
		pattern = "pgcluster"
	}
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return err
	}
	c.dir = dir
	if err := c.cred.chown(dir); err != nil {
		return err
	}
	var pw [18]byte
	rand.Read(pw[:])
	c.password = hex.EncodeToString(pw[:])
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return err
	}
	if err := c.cred.chown(pwfile); err != nil {
		return err
	}
	// --no-sync only spares initdb's own fsyncs; the server runs with
	// fsync on, as durability tests and benchmarks need.
	if err := c.run("initdb", "-D", c.Data(), "-U", "postgres", "--pwfile", pwfile,
		"--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync"); err != nil {
		return err
	}
	os.Remove(pwfile)
	if err := c.startWatchdog(); err != nil {
		return err
	}
	// A port found free can be taken before the server binds it; try
	// a few.
	for try := 0; ; try++ {
		if c.port, err = freePort(); err != nil {
			return err
		}
		err = c.ctl("start", "-o", c.serverOptions())
		if err == nil || try == 2 {
			return err
		}
	}
}

// ctl runs pg_ctl on the cluster, waiting for it to finish.
func (c *Cluster) ctl(args ...string) error {
	args = append([]string{"-D", c.Data(), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "60"}, args...)
	return c.run("pg_ctl", args...)
}

func (c *Cluster) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=" + c.bin + ":/usr/bin:/bin", "LC_ALL=C", "HOME=" + c.dir}
	c.cred.apply(cmd)
	return cmd
}

// run runs prog and, when it fails, says why with the end of the server
// log, where the reason usually is.
func (c *Cluster) run(prog string, args ...string) error {
	out, err := c.command(prog, args...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("%s %s: %v\n%s\nserver log:\n%s", prog, strings.Join(args, " "), err, out, tail(log))
	}
	return nil
}

func tail(b []byte) []byte {
	if len(b) > 4000 {
		return b[len(b)-4000:]
	}
	return b
}

// startWatchdog starts a shell that waits for its standard input to
// close and then stops the cluster and removes its directory. This
// process holds the other end, which the kernel closes however the
// process ends, so a program that panics, exits on a fatal error or is
// killed (a test binary by -timeout) leaves no server behind.
func (c *Cluster) startWatchdog() error {
	script := fmt.Sprintf(`read _; %q -D %q stop -m immediate >/dev/null 2>&1; rm -rf %q`,
		filepath.Join(c.bin, "pg_ctl"), c.Data(), c.dir)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	c.cred.apply(cmd)
	w, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	c.watchdog, c.stdin = cmd, w
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("pgcluster: no TCP port")
	}
	return addr.Port, nil
}
