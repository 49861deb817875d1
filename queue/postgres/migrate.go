package postgres

import (
	"context"
	"embed"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/mailsec/mailsec"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one file of migrations/, NNNN_name.sql, applied in the
// order of NNNN.
type migration struct {
	version int
	name    string
	sql     string
}

// migrations are parsed at start-up: a malformed file is a build
// mistake, which the tests catch.
var migrations = loadMigrations()

func loadMigrations() []migration {
	ents, err := migrationFiles.ReadDir("migrations")
	if err != nil {
		panic(err)
	}
	var ms []migration
	for _, e := range ents {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			panic("queue/postgres: migration " + e.Name() + " is not named NNNN_name.sql")
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			panic(err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i, m := range ms {
		if m.version != i+1 {
			panic(fmt.Sprintf("queue/postgres: migration %s: want version %d", m.name, i+1))
		}
	}
	return ms
}

// migrationLock is the advisory lock key of migration runs ("mailsec" in
// ASCII); advisory locks are per database, so queues in other databases
// of the same server do not wait for each other.
const migrationLock int64 = 0x6d61696c736563

// migrate applies the migrations after the schema's version up to upTo,
// in one transaction: PostgreSQL's DDL is transactional, so a failed
// migration leaves the schema as it was. The transaction-level advisory
// lock makes nodes that start together take turns; the later ones then
// find nothing to do. The lock goes with the transaction, so a node that
// dies half-way holds nobody up.
func (q *Queue) migrate(ctx context.Context, upTo int) error {
	const opname = "queue open"
	var applied []string
	err := pgx.BeginFunc(ctx, q.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version integer PRIMARY KEY,
			name    text NOT NULL,
			applied timestamptz NOT NULL DEFAULT now(),
			node    text NOT NULL)`); err != nil {
			return err
		}
		var have int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&have); err != nil {
			return err
		}
		if have > len(migrations) {
			return mailsec.Errorf(mailsec.Config, opname, nil,
				"the queue database has schema version %d, newer than this mailsec knows (%d): upgrade mailsec", have, len(migrations))
		}
		for _, m := range migrations[min(have, upTo):upTo] {
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return mailsec.Errorf(mailsec.Config, opname, err, "queue schema migration %s failed", m.name)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name, node) VALUES ($1, $2, $3)`,
				m.version, m.name, q.node); err != nil {
				return err
			}
			applied = append(applied, m.name)
		}
		return nil
	})
	if err != nil {
		return q.fail(opname, err)
	}
	for _, name := range applied {
		q.log.Info("applied queue schema migration", "migration", name, "node", q.node)
	}
	return nil
}
