package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/mailsec/mailsec/bench"
	"github.com/mailsec/mailsec/bench/sink"
	"github.com/mailsec/mailsec/server"
)

// Environment of the child process that runs mailsec serve.
const (
	// childEnv carries the sink's address: the child's route for
	// sink.test.
	childEnv = "MAILSEC_BENCH_RELAY_SINK"
	// profileEnv names a directory for the child's CPU and allocation
	// profiles (-profile).
	profileEnv = "MAILSEC_BENCH_RELAY_PROFILE"
	// pgDSNEnv and pgNodeEnv select the postgres queue backend (-pg):
	// queue.dsn and queue.node; the password comes as PGPASSWORD.
	pgDSNEnv  = "MAILSEC_BENCH_RELAY_PGDSN"
	pgNodeEnv = "MAILSEC_BENCH_RELAY_PGNODE"
)

// Credentials of the submitting user.
const (
	benchUser     = "bench"
	benchPassword = "bench-relay-password"
)

// runChildIfRequested turns this process into mailsec serve when
// spawnMailsec started it: server.Start, mailsec serve's own startup
// (generated CA, users file, embedded queue, relay), with one submission
// listener and a route sending sink.test to the sink, logging at info
// level to a file as mailsec serve logs to its standard error. It prints
// the submission address, the CA file and the queue directory, serves
// until its standard input closes, and exits.
func runChildIfRequested() {
	sinkAddr := os.Getenv(childEnv)
	if sinkAddr == "" {
		return
	}
	os.Exit(serveChild(sinkAddr))
}

func serveChild(sinkAddr string) int {
	dir, err := os.MkdirTemp("", "mailsec-benchrelay-")
	if err != nil {
		return childFail(err)
	}
	defer os.RemoveAll(dir)
	cfg := server.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Limits.MaxPerIP = 1000
	cfg.Listeners = []server.Listener{{Name: "submission", Kind: "submission", Address: "127.0.0.1:0", TLS: "require"}}
	cfg.Relay.Routes = []server.RouteConfig{{Domain: sinkDomain, NextHop: sinkAddr, TLS: "may"}}
	if dsn := os.Getenv(pgDSNEnv); dsn != "" {
		cfg.Queue = server.QueueConfig{Backend: "postgres", DSN: dsn, Node: os.Getenv(pgNodeEnv)}
		// mailsec serve with the postgres backend does not create
		// <data_dir>/queue, where its control socket goes (a product bug,
		// reported); make it here.
		if err := os.MkdirAll(server.QueueDir(cfg.DataDir), 0o700); err != nil {
			return childFail(err)
		}
	}
	logf, err := os.Create(filepath.Join(dir, "serve.log"))
	if err != nil {
		return childFail(err)
	}
	defer logf.Close()
	log := slog.New(slog.NewTextHandler(logf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	srv, err := server.Start(cfg, log)
	if err != nil {
		return childFail(err)
	}
	if err := srv.Env().Users.Add(benchUser, benchPassword); err != nil {
		return childFail(err)
	}
	if pdir := os.Getenv(profileEnv); pdir != "" {
		stop, err := bench.StartProfile(pdir)
		if err != nil {
			return childFail(err)
		}
		defer stop()
	}
	info := srv.Info()
	fmt.Printf("%s %s %s\n", info.Listeners[0].Addr, info.CAFile, info.QueueDir)
	sink.WaitForParent()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	return 0
}

// childFail reports a failed start; the parent then fails reading the
// addresses.
func childFail(err error) int {
	fmt.Fprintln(os.Stderr, "relay bench child:", err)
	return 2
}
