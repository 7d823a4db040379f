package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/migrate"
)

// killLockSession ends the server session that holds the runner lock of
// prefix, as pg_terminate_backend, KILL, an idle timeout or a network cut
// would, and returns once it is gone.
func killLockSession(t *testing.T, db *sql.DB, d migrate.Dialect, prefix string) {
	t.Helper()
	key := prefix + "runner"
	switch d {
	case migrate.PostgreSQL:
		var pid int64
		if err := db.QueryRow(`SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid::bigint = (hashtext($1)::bigint & 4294967295)`, key).Scan(&pid); err != nil {
			t.Fatalf("find the lock session: %v", err)
		}
		if _, err := db.Exec(`SELECT pg_terminate_backend($1)`, pid); err != nil {
			t.Fatal(err)
		}
	case migrate.MySQL:
		var id sql.NullInt64
		if err := db.QueryRow(`SELECT IS_USED_LOCK(?)`, key).Scan(&id); err != nil || !id.Valid {
			t.Fatalf("find the lock session: %v %v", id, err)
		}
		if _, err := db.Exec(`KILL ?`, id.Int64); err != nil {
			t.Fatal(err)
		}
	}
}

// lockTimes records when each runner committed batches.
type lockTimes struct {
	mu          sync.Mutex
	first, last map[string]time.Time
}

func (l *lockTimes) mark(who string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	if _, ok := l.first[who]; !ok {
		l.first[who] = now
	}
	l.last[who] = now
}

// TestLockSessionKilledMidBackfill: the first runner's lock session is
// killed while it backfills; it stops with ErrLocked, and a second runner
// that takes the lock meanwhile commits its first batch only after the
// first runner's last one. Never both.
func TestLockSessionKilledMidBackfill(t *testing.T) {
	for _, d := range dialects() {
		if d == migrate.SQLite {
			continue // a lease, not a session: TestSQLiteLeaseLostIsNotCancellation
		}
		t.Run(d.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			f := newFixture(t, d, "mt_kl", 3000)
			db, table, prefix, name := f.db, f.table, f.prefix, f.name
			times := &lockTimes{first: map[string]time.Time{}, last: map[string]time.Time{}}
			batches := make(chan struct{}, 100)
			opts := func(who string) migrate.Options {
				return migrate.Options{StateTablePrefix: prefix, BatchSize: 50, MaxBatchSize: 50, Throttle: 10 * time.Millisecond, LockCheck: 50 * time.Millisecond,
					OnProgress: func(migrate.Progress) {
						times.mark(who)
						if who == "first" {
							batches <- struct{}{}
						}
					}}
			}
			r1, err := migrate.New(db, splitName(d, table, name), opts("first"))
			if err != nil {
				t.Fatal(err)
			}
			if err := r1.Start(ctx); err != nil {
				t.Fatal(err)
			}
			done1 := make(chan error, 1)
			go func() { done1 <- r1.Backfill(ctx) }()
			for i := 0; i < 3; i++ {
				select {
				case <-batches:
				case err := <-done1:
					t.Fatalf("first runner ended before its third batch: %v", err)
				case <-ctx.Done():
					t.Fatal("no third batch within a minute")
				}
			}
			killLockSession(t, db, d, prefix)
			r2, err := migrate.New(db, splitName(d, table, name), opts("second"))
			if err != nil {
				t.Fatal(err)
			}
			done2 := make(chan error, 1)
			go func() { done2 <- r2.Backfill(ctx) }()
			select {
			case err := <-done1:
				if !errors.Is(err, migrate.ErrLocked) {
					t.Fatalf("first runner after its lock session was killed: %v, want ErrLocked", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("first runner still running 10s after its lock session was killed")
			}
			select {
			case err := <-done2:
				if err != nil {
					t.Fatalf("second runner: %v", err)
				}
			case <-ctx.Done():
				t.Fatal("second runner did not finish within a minute")
			}
			if f, l := times.first["second"], times.last["first"]; !f.After(l) {
				t.Fatalf("both ran: the second runner committed a batch at %v, the first its last at %v", f.Format(time.StampMicro), l.Format(time.StampMicro))
			}
			if bad, total := inconsistent(t, db, d, table, true); bad != 0 || total != 3000 {
				t.Fatalf("%d of %d rows inconsistent", bad, total)
			}
		})
	}
}

// TestLockSessionKilledMidComplete: Complete waits for an instance that has
// not acted on read_new; the lock session is killed during the wait. The
// first runner stops with ErrLocked at once, having changed nothing, and a
// second runner completes once the instance caught up.
func TestLockSessionKilledMidComplete(t *testing.T) {
	for _, d := range dialects() {
		if d == migrate.SQLite {
			continue
		}
		t.Run(d.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			f := newFixture(t, d, "mt_kc", 200)
			db, table, prefix, name := f.db, f.table, f.prefix, f.name
			opts := migrate.Options{StateTablePrefix: prefix, LockCheck: 50 * time.Millisecond, CatchUpTimeout: 30 * time.Second, InstancePoll: 20 * time.Millisecond}
			r1, err := migrate.New(db, splitName(d, table, name), opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []func(context.Context) error{r1.Start, r1.Backfill, r1.SwitchReads} {
				if err := f(ctx); err != nil {
					t.Fatal(err)
				}
			}
			in, err := migrate.Register(ctx, db, "2.0.0", migrate.RegistryOptions{StateTablePrefix: prefix, Migrations: []string{name}, Interval: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			done1 := make(chan error, 1)
			go func() { done1 <- r1.Complete(ctx) }()
			// Complete holds the lock while it waits for the instance.
			waitUntil(t, "Complete to hold the runner lock", func() bool { return lockHeld(db, d, prefix) })
			killLockSession(t, db, d, prefix)
			select {
			case err := <-done1:
				if !errors.Is(err, migrate.ErrLocked) {
					t.Fatalf("first runner after its lock session was killed: %v, want ErrLocked", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("first runner still waiting 10s after its lock session was killed")
			}
			if p, _ := r1.Phase(ctx); p != migrate.PhaseReadNew {
				t.Fatalf("phase %q after the first runner stopped, want read_new (nothing done)", p)
			}
			if err := in.Observe(ctx, name, migrate.PhaseReadNew); err != nil {
				t.Fatal(err)
			}
			r2, err := migrate.New(db, splitName(d, table, name), opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := r2.Complete(ctx); err != nil {
				t.Fatal(err)
			}
			if hasColumn(t, db, d, table, "name") {
				t.Fatal("old column still there after the second runner's Complete")
			}
		})
	}
}

// lockHeld reports whether some session holds the runner lock of prefix.
func lockHeld(db *sql.DB, d migrate.Dialect, prefix string) bool {
	var n int
	var err error
	if d == migrate.PostgreSQL {
		err = db.QueryRow(`SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid::bigint = (hashtext($1)::bigint & 4294967295)`, prefix+"runner").Scan(&n)
	} else {
		err = db.QueryRow(`SELECT IS_USED_LOCK(?) IS NOT NULL`, prefix+"runner").Scan(&n)
	}
	return err == nil && n > 0
}
