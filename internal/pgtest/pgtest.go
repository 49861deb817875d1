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
//
// The cluster itself is internal/pgcluster's; this package adds what
// tests need on top: one cluster per binary, a database per test, and
// skipping or failing when PostgreSQL is missing.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/mailsec/mailsec/internal/pgcluster"
)

var (
	bootOnce sync.Once
	theOne   *pgcluster.Cluster // the cluster of this test binary
	skipWhy  string             // set when PostgreSQL is not installed
	bootErr  error
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
	var b [8]byte
	rand.Read(b[:])
	name := "t_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, theOne.DSN("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	t.Cleanup(func() {
		admin, err := pgx.Connect(ctx, theOne.DSN("postgres"))
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
	return theOne.DSN(name)
}

// Main runs the tests and then stops the cluster; call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if theOne != nil {
		theOne.Close()
	}
	os.Exit(code)
}

// Crash stops the cluster as a crash would (immediate shutdown), so that
// a test can see what its code does while the database is down and that
// what it acknowledged survives; Restart brings it back. Both act on
// every test of the binary, so tests using them must not run in
// parallel with others.
func Crash(t testing.TB) {
	t.Helper()
	if err := theOne.Crash(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// Restart restarts the cluster (or starts it after Crash), as when the
// database server restarts under a running application.
func Restart(t testing.TB) {
	t.Helper()
	if err := theOne.Restart(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
}

// boot starts the binary's cluster. PostgreSQL missing is a reason to
// skip (or fail, under MAILSEC_REQUIRE_PG=1); failing to start it with
// PostgreSQL present is always a failure.
func boot() {
	// synchronous_commit off by default, so that a test that crashes
	// the server sees whether its code asks for durable commits itself.
	c, err := pgcluster.Start(pgcluster.Options{
		TempPattern:   "pgtest",
		ServerOptions: "-c max_connections=300 -c synchronous_commit=off",
	})
	switch {
	case errors.Is(err, pgcluster.ErrUnavailable):
		skipWhy = err.Error()
	case err != nil:
		bootErr = err
	default:
		theOne = c
	}
}
