package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailsec/mailsec/internal/pgcluster"
)

// pgCluster is a private PostgreSQL server for the -pg mode (see
// internal/pgcluster: initdb in a temporary directory, as the postgres
// user when this program runs as root, a free loopback port, host
// connections with scram-sha-256, fsync on and the default WAL
// settings), plus what the benchmark adds: a role mailsec with the
// superuser's random password owning one database per node count
// (mailsec1, mailsec2, ...), so that the node groups do not take each
// other's messages, and superuser pools for watching the queue and WAL.
type pgCluster struct {
	srv      *pgcluster.Cluster
	admin    *pgxpool.Pool            // superuser, database postgres
	pools    map[string]*pgxpool.Pool // superuser, per database
	extraDSN string                   // appended to the nodes' DSN
}

// startPG boots the cluster and creates the databases named dbs.
func startPG(dbs []string) (*pgCluster, error) {
	srv, err := pgcluster.Start(pgcluster.Options{
		TempPattern:   "benchrelay-pg-",
		ServerOptions: "-c max_connections=200",
	})
	if err != nil {
		return nil, err
	}
	c := &pgCluster{srv: srv, pools: map[string]*pgxpool.Pool{}}
	fail := func(err error) (*pgCluster, error) { c.stop(); return nil, err }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c.admin, err = c.pool(ctx, "postgres", "postgres"); err != nil {
		return fail(err)
	}
	// DDL takes no bind parameters: the password is a literal (hex, so
	// nothing to escape), sent over the connection only.
	if _, err := c.admin.Exec(ctx, "CREATE ROLE mailsec LOGIN PASSWORD '"+c.password()+"'"); err != nil {
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

// password is that of both the superuser and the mailsec role.
func (c *pgCluster) password() string { return c.srv.Password() }

// pool connects as user to db with the password in the configuration,
// never in a DSN string.
func (c *pgCluster) pool(ctx context.Context, usr, db string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", c.srv.Port(), usr, db))
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.Password = c.password()
	cfg.MaxConns = 2
	cfg.ConnConfig.RuntimeParams["application_name"] = "benchrelay"
	return pgxpool.NewWithConfig(ctx, cfg)
}

// dsn is what a mailsec node gets as queue.dsn (the password goes in its
// environment as PGPASSWORD).
func (c *pgCluster) dsn(db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=mailsec dbname=%s sslmode=disable", c.srv.Port(), db) + c.extraDSN
}

// stop closes the pools and lets the watchdog stop the server.
func (c *pgCluster) stop() {
	for _, p := range c.pools {
		p.Close()
	}
	if c.admin != nil {
		c.admin.Close()
	}
	c.srv.Close()
}

// pids are the postmaster and its children now; perf stat -p counts
// the backends forked later too (counters are inherited).
func (c *pgCluster) pids() []int {
	b, err := os.ReadFile(filepath.Join(c.srv.Data(), "postmaster.pid"))
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
