package postgres

import (
	"context"
	"sync"
	"time"

	"github.com/mailsec/mailsec"
	"github.com/mailsec/mailsec/queue/internal/backend"
)

// Acquire takes one of limit connection slots of dest shared by every
// node on the database, waiting until one is free or ctx ends; it has
// the signature of relay.Limiter, which it is meant to be.
//
// A slot is a row of dest_slots with a lease: the holder renews it
// every third of Options.SlotLease, and a row whose lease ran out counts
// as free, so the slots of a node that died come back after SlotLease.
// release deletes the row and notifies the waiting nodes; it never
// fails (a row it cannot delete, the database being down, runs out).
// While no slot is free the caller waits for a release's notification,
// polling with back-off as well (a lease running out notifies nobody).
//
// The bound holds for a constant limit: slots are numbered below it. A
// limit lowered while slots above it are held allows those to finish.
func (q *Queue) Acquire(ctx context.Context, dest string, limit int) (release func(), err error) {
	const opname = "queue acquire"
	if limit < 1 {
		return nil, mailsec.Errorf(mailsec.Config, opname, nil, "connection limit %d for %s: want at least 1", limit, dest)
	}
	ctx, exit, err := q.enter(ctx, opname)
	if err != nil {
		return nil, err
	}
	defer exit()
	token := backend.NewToken()
	backoff := 10 * time.Millisecond
	for {
		// Taken before trying, so that a release between the try and the
		// wait is not missed.
		freed := q.slotFreed(dest)
		var (
			free int
			slot *int32
		)
		err := q.pool.QueryRow(ctx, `WITH free AS (
				SELECT s FROM generate_series(0, $2::integer - 1) AS s
				WHERE NOT EXISTS (SELECT 1 FROM dest_slots d
					WHERE d.dest = $1 AND d.slot = s AND d.expires >= now())
				ORDER BY random() LIMIT 1
			), taken AS (
				INSERT INTO dest_slots (dest, slot, node, token, expires)
				SELECT $1, s, $3, $4, now() + $5::bigint * interval '1 microsecond' FROM free
				ON CONFLICT (dest, slot) DO UPDATE
					SET node = excluded.node, token = excluded.token, expires = excluded.expires
					WHERE dest_slots.expires < now()
				RETURNING slot)
			SELECT (SELECT count(*) FROM free), (SELECT slot FROM taken)`,
			dest, limit, q.node, token, q.slotLease.Microseconds()).Scan(&free, &slot)
		if err != nil {
			return nil, q.fail(opname, err)
		}
		if slot != nil {
			return q.hold(dest, int(*slot), token), nil
		}
		if free > 0 {
			// Another node took the free slot first; there may be others.
			continue
		}
		select {
		case <-ctx.Done():
			return nil, q.fail(opname, ctx.Err())
		case <-freed:
		case <-time.After(backoff):
			backoff = min(2*backoff, time.Second)
		}
	}
}

// hold renews the slot until release, and returns release.
func (q *Queue) hold(dest string, slot int, token string) func() {
	ctx, stop := context.WithCancel(q.ctx)
	done := make(chan struct{})
	q.bg.Add(1)
	go func() {
		defer q.bg.Done()
		defer close(done)
		q.renew(ctx, dest, slot, token)
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			stop()
			<-done
			q.releaseSlot(dest, slot, token)
		})
	}
}

func (q *Queue) renew(ctx context.Context, dest string, slot int, token string) {
	t := time.NewTicker(q.slotLease / 3)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		tag, err := q.pool.Exec(ctx, `UPDATE dest_slots SET expires = now() + $4::bigint * interval '1 microsecond'
			WHERE dest = $1 AND slot = $2 AND token = $3`, dest, slot, token, q.slotLease.Microseconds())
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			q.log.Warn("cannot renew a connection slot; trying again", "dest", dest, "slot", slot, "err", err)
		case tag.RowsAffected() == 0:
			// Not renewed in time and taken by another: the limit may be
			// exceeded by one until this delivery ends.
			q.log.Error("connection slot lost to another holder", "dest", dest, "slot", slot, "node", q.node)
			return
		}
	}
}

func (q *Queue) releaseSlot(dest string, slot int, token string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctx, exit, err := q.enter(ctx, "queue release")
	if err != nil {
		return // closed: the row runs out
	}
	defer exit()
	_, err = q.pool.Exec(ctx, `WITH d AS (DELETE FROM dest_slots WHERE dest = $1 AND slot = $2 AND token = $3)
		SELECT pg_notify($4, $1)`, dest, slot, token, slotChannel)
	if err != nil {
		q.log.Warn("cannot release a connection slot; it will expire", "dest", dest, "slot", slot, "err", err)
		return
	}
	q.slotsFreed(dest)
}

// slotFreed returns a channel closed when a slot of dest may have come
// free.
func (q *Queue) slotFreed(dest string) <-chan struct{} {
	q.mu.Lock()
	defer q.mu.Unlock()
	c, ok := q.freed[dest]
	if !ok {
		c = make(chan struct{})
		q.freed[dest] = c
	}
	return c
}

// slotsFreed wakes the waiters for dest, or for every destination when
// dest is "" (notifications may have been missed).
func (q *Queue) slotsFreed(dest string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for d, c := range q.freed {
		if dest == "" || d == dest {
			close(c)
			delete(q.freed, d)
		}
	}
}
