// Package pgtest gives tests a private PostgreSQL server: one cluster per
// test binary, made with initdb in a temporary directory and listening on
// a free loopback port, and a fresh database for each test, so that tests
// are independent of each other and of any PostgreSQL service the machine
// runs.
//
// When PostgreSQL is not installed the tests that need it are skipped,
// unless MAILSEC_REQUIRE_PG=1 is set (as CI should), which fails them:
// a CI machine that lost its PostgreSQL must not pass by skipping.
//
// The cluster's superuser has a random password and host connections
// need it (scram-sha-256), so the tests exercise password authentication
// as a deployment would; the password is in the DSNs Start returns, which
// is the harness's business only.
package pgtest

import (
	"context"
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
	"testing"

	"github.com/jackc/pgx/v5"
)

// cluster is the server of this test binary.
type cluster struct {
	bin      string // directory of initdb, pg_ctl and postgres
	dir      string // the temporary directory: data/, the socket, the log
	port     int
	password string
	cred     *credential // whom to run PostgreSQL as; nil: as ourselves
	watchdog *exec.Cmd   // stops the cluster when this process ends
	stdin    io.WriteCloser
}

var (
	bootOnce sync.Once
	theOne   *cluster
	skipWhy  string // set when PostgreSQL is not installed
	bootErr  error
	// ctlMu serialises pg_ctl runs (Stop, Restart, shutdown).
	ctlMu sync.Mutex
)

// Start returns the DSN of a new, empty database on the binary's private
// cluster, starting the cluster on first use. The database is dropped
// when t ends.
func Start(t testing.TB) string {
	t.Helper()
	bootOnce.Do(boot)
	if skipWhy != "" {
		if os.Getenv("MAILSEC_REQUIRE_PG") == "1" {
			t.Fatalf("MAILSEC_REQUIRE_PG=1 but %s", skipWhy)
		}
		t.Skipf("%s: install postgresql; .ci/run installs it", skipWhy)
	}
	if bootErr != nil {
		t.Fatalf("pgtest: cannot start PostgreSQL: %v", bootErr)
	}
	c := theOne
	var b [8]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, c.dsn("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(ctx, c.dsn("postgres"))
		if err != nil {
			t.Errorf("pgtest: cannot drop %s: %v", name, err)
			return
		}
		defer admin.Close(ctx)
		// FORCE: a test that failed half-way may leave connections open.
		if _, err := admin.Exec(ctx, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: cannot drop %s: %v", name, err)
		}
	})
	return c.dsn(name)
}

// Main runs the tests and then stops the cluster; call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	shutdown()
	os.Exit(code)
}

// Stop stops the cluster (fast shutdown: sessions are ended), so that a
// test can see what its code does while the database is down; Restart
// brings it back. Both act on every test of the binary, so tests using
// them must not run in parallel with others.
func Stop(t testing.TB) {
	t.Helper()
	ctlMu.Lock()
	defer ctlMu.Unlock()
	if err := theOne.ctl("stop", "-m", "fast"); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Restart restarts the cluster (or starts it after Stop), as when the
// database server restarts under a running application.
func Restart(t testing.TB) {
	t.Helper()
	ctlMu.Lock()
	defer ctlMu.Unlock()
	if err := theOne.ctl("restart", "-m", "fast", "-o", theOne.serverOptions()); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

func (c *cluster) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/%s?sslmode=disable", c.password, c.port, db)
}

func (c *cluster) serverOptions() string {
	return fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=on -c max_connections=300", c.port, c.dir)
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

func boot() {
	c := &cluster{bin: findBin()}
	if c.bin == "" {
		skipWhy = "PostgreSQL (initdb, pg_ctl) is not installed"
		return
	}
	// PostgreSQL refuses to run as root; Debian's package creates the
	// postgres user to run it as.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			skipWhy = "running as root and there is no postgres user to run PostgreSQL as"
			return
		}
		if c.cred, err = lookupCredential(u); err != nil {
			bootErr = err
			return
		}
	}
	bootErr = c.boot()
	if bootErr == nil {
		theOne = c
	} else if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

func (c *cluster) boot() error {
	dir, err := os.MkdirTemp("", "pgtest")
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
	// fsync on, as durability tests need.
	if err := c.run("initdb", "-D", c.data(), "-U", "postgres", "--pwfile", pwfile,
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

func (c *cluster) data() string { return filepath.Join(c.dir, "data") }

// ctl runs pg_ctl on the cluster, waiting for it to finish.
func (c *cluster) ctl(args ...string) error {
	args = append([]string{"-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "60"}, args...)
	return c.run("pg_ctl", args...)
}

func (c *cluster) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=" + c.bin + ":/usr/bin:/bin", "LC_ALL=C", "HOME=" + c.dir}
	c.cred.apply(cmd)
	return cmd
}

func (c *cluster) run(prog string, args ...string) error {
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
// process ends, so a test binary that panics or is killed by -timeout
// leaves no server behind.
func (c *cluster) startWatchdog() error {
	script := fmt.Sprintf(`read _; %q -D %q stop -m immediate >/dev/null 2>&1; rm -rf %q`,
		filepath.Join(c.bin, "pg_ctl"), c.data(), c.dir)
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

func shutdown() {
	if theOne == nil {
		return
	}
	ctlMu.Lock()
	defer ctlMu.Unlock()
	theOne.stdin.Close()
	theOne.watchdog.Wait()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	addr, ok := l.Addr().(*net.TCPAddr)
	if !ok {
		return 0, errors.New("pgtest: no TCP port")
	}
	return addr.Port, nil
}
