package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// pgCluster is a private PostgreSQL server for the -pg mode: initdb in a
// temporary directory (as the postgres user when this program runs as
// root, since PostgreSQL refuses root), a free loopback port, host
// connections with scram-sha-256, fsync on and the default WAL settings;
// a role mailsec with a random password owning one database per node
// count (mailsec1, mailsec2, ...), so that the node groups do not take
// each other's messages. It is what internal/pgtest does for tests, for
// a program (pgtest takes a testing.TB).
type pgCluster struct {
	bin, dir string
	port     int
	password string // of both the superuser and the mailsec role
	cred     *syscall.Credential
	watchdog *exec.Cmd
	stdin    io.WriteCloser
	admin    *pgxpool.Pool            // superuser, database postgres
	pools    map[string]*pgxpool.Pool // superuser, per database
	extraDSN string                   // appended to the nodes' DSN
}

func pgBin() string {
	if p, err := exec.LookPath("initdb"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), "pg_ctl")); err == nil {
			return filepath.Dir(p)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	ver := func(d string) int { n, _ := strconv.Atoi(filepath.Base(filepath.Dir(d))); return n }
	sort.Slice(dirs, func(i, j int) bool { return ver(dirs[i]) > ver(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

// startPG boots the cluster and creates the databases named dbs.
func startPG(dbs []string) (*pgCluster, error) {
	c := &pgCluster{bin: pgBin(), pools: map[string]*pgxpool.Pool{}}
	if c.bin == "" {
		return nil, errors.New("PostgreSQL (initdb, pg_ctl) is not installed")
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, errors.New("running as root and there is no postgres user to run PostgreSQL as")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	dir, err := os.MkdirTemp("", "benchrelay-pg-")
	if err != nil {
		return nil, err
	}
	c.dir = dir
	fail := func(err error) (*pgCluster, error) { c.stop(); return nil, err }
	if err := c.chown(dir); err != nil {
		return fail(err)
	}
	var pw [18]byte
	rand.Read(pw[:])
	c.password = hex.EncodeToString(pw[:])
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(c.password+"\n"), 0o600); err != nil {
		return fail(err)
	}
	if err := c.chown(pwfile); err != nil {
		return fail(err)
	}
	if err := c.run("initdb", "-D", c.data(), "-U", "postgres", "--pwfile", pwfile,
		"--auth", "scram-sha-256", "-E", "UTF8", "--locale", "C", "--no-sync"); err != nil {
		return fail(err)
	}
	os.Remove(pwfile)
	if err := c.startWatchdog(); err != nil {
		return fail(err)
	}
	for try := 0; ; try++ {
		if c.port, err = freePort(); err != nil {
			return fail(err)
		}
		opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -p %d -k %s -c fsync=on -c max_connections=200", c.port, c.dir)
		err = c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-w", "-t", "60", "start", "-o", opts)
		if err == nil {
			break
		}
		if try == 2 {
			return fail(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c.admin, err = c.pool(ctx, "postgres", "postgres"); err != nil {
		return fail(err)
	}
	// DDL takes no bind parameters: the password is a literal (hex, so
	// nothing to escape), sent over the connection only.
	if _, err := c.admin.Exec(ctx, "CREATE ROLE mailsec LOGIN PASSWORD '"+c.password+"'"); err != nil {
		return fail(err)
	}
	for _, db := range dbs {
		if _, err := c.admin.Exec(ctx, "CREATE DATABASE "+db+" OWNER mailsec"); err != nil {
			return fail(err)
		}
		if c.pools[db], err = c.pool(ctx, "postgres", db); err != nil {
			return fail(err)
		}
	}
	return c, nil
}

// pool connects as user to db with the password in the configuration,
// never in a DSN string.
func (c *pgCluster) pool(ctx context.Context, usr, db string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", c.port, usr, db))
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.Password = c.password
	cfg.MaxConns = 2
	cfg.ConnConfig.RuntimeParams["application_name"] = "benchrelay"
	return pgxpool.NewWithConfig(ctx, cfg)
}

// dsn is what a mailsec node gets as queue.dsn (the password goes in its
// environment as PGPASSWORD).
func (c *pgCluster) dsn(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=mailsec dbname=%s sslmode=disable", c.port, db) + c.extraDSN
}

func (c *pgCluster) data() string { return filepath.Join(c.dir, "data") }

func (c *pgCluster) chown(name string) error {
	if c.cred == nil {
		return nil
	}
	return os.Chown(name, int(c.cred.Uid), int(c.cred.Gid))
}

func (c *pgCluster) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=" + c.bin + ":/usr/bin:/bin", "LC_ALL=C", "HOME=" + c.dir}
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd
}

func (c *pgCluster) run(prog string, args ...string) error {
	out, err := c.command(prog, args...).CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		if len(log) > 3000 {
			log = log[len(log)-3000:]
		}
		return fmt.Errorf("%s %s: %v\n%s\nserver log:\n%s", prog, strings.Join(args, " "), err, out, log)
	}
	return nil
}

// startWatchdog: a shell, as postgres, that stops the cluster and removes
// its directory when this process's end closes its standard input, so
// that a crash or fatal() leaves no server behind.
func (c *pgCluster) startWatchdog() error {
	script := fmt.Sprintf(`read _; %q -D %q stop -m immediate >/dev/null 2>&1; rm -rf %q`,
		filepath.Join(c.bin, "pg_ctl"), c.data(), c.dir)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "LC_ALL=C"}
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
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

// stop closes the pools and lets the watchdog stop the server.
func (c *pgCluster) stop() {
	for _, p := range c.pools {
		p.Close()
	}
	if c.admin != nil {
		c.admin.Close()
	}
	if c.watchdog != nil {
		c.stdin.Close()
		c.watchdog.Wait()
		c.watchdog = nil
	} else if c.dir != "" {
		os.RemoveAll(c.dir)
	}
}

// pids are the postmaster and its children now; perf stat -p counts
// the backends forked later too (counters are inherited).
func (c *pgCluster) pids() []int {
	b, err := os.ReadFile(filepath.Join(c.data(), "postmaster.pid"))
	if err != nil {
		return nil
	}
	pm, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return nil
	}
	out := []int{pm}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(st)
		if i := strings.LastIndexByte(s, ')'); i > 0 {
			fs := strings.Fields(s[i+1:])
			if len(fs) > 1 && fs[1] == strconv.Itoa(pm) {
				out = append(out, pid)
			}
		}
	}
	return out
}

func (c *pgCluster) queued(db string) int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var n int
	if err := c.pools[db].QueryRow(ctx, "SELECT count(*) FROM messages").Scan(&n); err != nil {
		return 1 // not known: keep waiting
	}
	return n
}

// walStats: the WAL written since mark (pg_current_wal_lsn, exact,
// unlike pg_stat_wal whose counters backends flush only every second or
// when idle) and the nodes' backends at the time of reading.
type walStats struct {
	bytes int64
	conns int
}

// markWAL returns the current WAL position.
func (c *pgCluster) markWAL() string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var lsn string
	c.admin.QueryRow(ctx, "SELECT pg_current_wal_lsn()::text").Scan(&lsn)
	return lsn
}

func (c *pgCluster) readWAL(db, mark string) walStats {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var s walStats
	c.admin.QueryRow(ctx, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint", mark).Scan(&s.bytes)
	c.admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'mailsec' AND datname = $1", db).Scan(&s.conns)
	return s
}
