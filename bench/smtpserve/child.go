package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"time"

	"github.com/mailsec/mailsec/bench"
	"github.com/mailsec/mailsec/bench/sink"
	"github.com/mailsec/mailsec/server"
	"github.com/mailsec/mailsec/smtpd"
)

// childEnv marks the child process that runs mailsec's servers.
const childEnv = "MAILSEC_BENCH_SMTPSERVE"

// runChildIfRequested turns this process into mailsec's servers when
// spawnMailsec started it: mailsec serve's own startup (server.Start, with
// its generated CA, users file and Maildir store) with one MX listener,
// plus a second MX listener on an smtpd.Server with the same TLS and users
// but a discard backend. It prints both addresses and the CA path, serves
// until its standard input closes, and exits: it never returns, or the
// child would go on to run the benchmark (and spawn children) itself.
func runChildIfRequested() {
	if os.Getenv(childEnv) == "" {
		return
	}
	os.Exit(serveChild())
}

func serveChild() int {
	dir, err := os.MkdirTemp("", "mailsec-smtpserve-")
	if err != nil {
		return childFail(err)
	}
	defer os.RemoveAll(dir)
	cfg := server.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Domains = []string{"example.net"}
	cfg.Limits.MaxMessageSize = 1 << 30
	cfg.Limits.MaxPerIP = 1000
	// -idle: room for that many sessions from 127.0.0.1, through the
	// configuration as an operator would raise them.
	sessions, _ := strconv.Atoi(os.Getenv(sessionsEnv))
	if sessions > 0 {
		cfg.Limits.MaxSessions = sessions + 10
		cfg.Limits.MaxPerIP = sessions + 10
	}
	cfg.Listeners = []server.Listener{{Name: "mx", Kind: "mx", Address: "127.0.0.1:0", TLS: "may"}}
	// Profile labels tell the two servers apart: goroutines inherit them.
	var srv *server.Server
	pprof.Do(context.Background(), pprof.Labels("server", "maildir"), func(context.Context) {
		srv, err = server.Start(cfg, nil)
	})
	if err != nil {
		return childFail(err)
	}
	env := srv.Env()
	if err := env.Users.Add("sink", "unused-password"); err != nil {
		return childFail(err)
	}
	discard := &smtpd.Server{Hostname: "localhost", Domains: cfg.Domains, TLSConfig: env.TLS, Users: env.Users,
		Backend: smtpd.Discard{}, Limits: smtpd.Limits{MaxMessageSize: 1 << 30,
			MaxSessions: cfg.Limits.MaxSessions, MaxPerIP: cfg.Limits.MaxPerIP}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return childFail(err)
	}
	go pprof.Do(context.Background(), pprof.Labels("server", "discard"), func(context.Context) {
		discard.Serve(ln, smtpd.MX, smtpd.TLSMay)
	})
	if dir := os.Getenv(profileEnv); dir != "" {
		stop, err := bench.StartProfile(dir)
		if err != nil {
			return childFail(err)
		}
		defer stop()
	}
	fmt.Printf("%s %s %s\n", ln.Addr(), srv.Info().Listeners[0].Addr, srv.Info().CAFile)
	sink.WaitForParent()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	discard.Shutdown(ctx)
	srv.Shutdown(ctx)
	return 0
}

// childFail reports a failed start; the parent then fails reading the
// addresses.
func childFail(err error) int {
	fmt.Fprintln(os.Stderr, "smtpserve child:", err)
	return 2
}

// sessionsEnv carries -idle to the child, which raises its session limits
// to fit.
const sessionsEnv = "MAILSEC_BENCH_SMTPSERVE_SESSIONS"

// profileEnv names the directory the child writes its CPU and allocation
// profiles to (the -profile flag).
const profileEnv = "MAILSEC_BENCH_SMTPSERVE_PROFILE"
