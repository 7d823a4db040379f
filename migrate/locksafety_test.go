package migrate_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/migrate"
)

// TestDDLBlockedByLongTransactionRetries holds a lock in a long
// transaction, starts a migration whose DDL needs a conflicting lock, and
// checks that the DDL times out and retries, and that application queries
// issued meanwhile complete while the long transaction is still open. If
// the DDL waited without a lock timeout, those queries would queue behind
// it until the long transaction ends, which here happens only after they
// completed: the test would hang instead of passing.
func TestDDLBlockedByLongTransactionRetries(t *testing.T) {
	for _, d := range dialects() {
		if d == migrate.SQLite {
			// SQLite has no lock queue (readers never wait in WAL mode) and a
			// long write transaction blocks the runner's own state writes
			// too: TestSQLiteDDLBusyRetries takes the writer lock at the
			// right moment instead.
			continue
		}
		t.Run(d.String(), func(t *testing.T) {
			db := openDB(t, d)
			const table, prefix = "mt_lock_users", "mt_lock_"
			dropAll(t, db, d, prefix, table)
			t.Cleanup(func() { dropAll(t, db, d, prefix, table) })
			if _, err := db.Exec(usersDDL(d, table)); err != nil {
				t.Fatal(err)
			}
			seed(t, db, d, table, 100)
			ctx := boundedCtx(t)

			// The long transaction.
			blocker, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer blocker.Close()
			if d == migrate.SQLite {
				_, err = blocker.ExecContext(ctx, "BEGIN IMMEDIATE")
			} else {
				_, err = blocker.ExecContext(ctx, "BEGIN")
			}
			if err != nil {
				t.Fatal(err)
			}
			if d == migrate.SQLite {
				_, err = blocker.ExecContext(ctx, "INSERT INTO "+qi(d, table)+" (name) VALUES ('long tx')")
			} else {
				_, err = blocker.ExecContext(ctx, "SELECT * FROM "+qi(d, table)+" LIMIT 1")
			}
			if err != nil {
				t.Fatal(err)
			}

			retries := make(chan int, 100000)
			var retryCount atomic.Int64
			m := &migrate.Migration{Name: "mt_lock_add", Operations: []migrate.Operation{
				migrate.AddColumn{Table: table, Column: migrate.Column{Name: "nickname", Type: "VARCHAR(50)"}},
			}}
			r, err := migrate.New(db, m, migrate.Options{
				StateTablePrefix: prefix,
				LockTimeout:      100 * time.Millisecond,
				RetryBackoff:     10 * time.Millisecond,
				MaxRetryBackoff:  40 * time.Millisecond,
				DDLAttempts:      100000,
				OnRetry: func(_ string, attempt int, err error) {
					retryCount.Add(1)
					retries <- attempt
				},
			})
			if err != nil {
				t.Fatal(err)
			}

			// A Start whose context is cancelled while it retries returns
			// ctx.Err() and can be resumed.
			cctx, cancel := context.WithCancel(ctx)
			errc := make(chan error, 1)
			go func() { errc <- r.Start(cctx) }()
			for a := range retries {
				if a >= 2 {
					break
				}
			}
			cancel()
			if err := <-errc; !errors.Is(err, context.Canceled) {
				t.Fatalf("Start with cancelled ctx: %v", err)
			}
			if p, _ := r.Phase(ctx); p != migrate.PhaseExpanding {
				t.Fatalf("phase %q after cancelled Start", p)
			}

			// Now the real Start, retried until the blocker ends.
			go func() { errc <- r.Start(ctx) }()
			<-retries
			<-retries

			// Application queries while the DDL keeps retrying, for at least
			// three more DDL attempts so that they meet it waiting.
			until := retryCount.Load() + 3
			if d == migrate.MySQL {
				until-- // whole-second lock timeouts: keep the test short
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			var worst time.Duration
			queries := 0
			var qerr error
			for w := range 3 {
				wg.Go(func() {
					for i := 0; i < 2000 && retryCount.Load() < until; i++ {
						t0 := time.Now()
						var n int
						err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+qi(d, table)+" WHERE id > "+ph(d, 1), w*i).Scan(&n)
						el := time.Since(t0)
						mu.Lock()
						worst = max(worst, el)
						queries++
						if err != nil && qerr == nil {
							qerr = err
						}
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			if qerr != nil {
				t.Fatal(qerr)
			}
			select {
			case err := <-errc:
				t.Fatalf("Start finished while the long transaction still held its lock: %v", err)
			default:
			}
			if _, err := blocker.ExecContext(ctx, "COMMIT"); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			var n int
			if err := db.QueryRow("SELECT COUNT(nickname) FROM " + qi(d, table)).Scan(&n); err != nil {
				t.Fatalf("column not added: %v", err)
			}
			t.Logf("%v: DDL retried %d times behind the long transaction; %d application queries meanwhile, slowest %v (lock timeout 100ms, %s)", d, retryCount.Load(), queries, worst, map[bool]string{true: "MySQL rounds it up to 1s", false: "as set"}[d == migrate.MySQL])
		})
	}
}

// TestBackfillBatchBehindRowLockRetries holds a row lock inside the
// backfill's range: the batch gives up after the lock timeout (instead of
// holding its own row locks while it waits), is retried, and the backfill
// completes once the lock is released.
func TestBackfillBatchBehindRowLockRetries(t *testing.T) {
	for _, d := range dialects() {
		if d == migrate.SQLite {
			continue // no row locks: the single writer lock is covered by busy_timeout
		}
		t.Run(d.String(), func(t *testing.T) {
			db := openDB(t, d)
			const table, prefix = "mt_rowlock_users", "mt_rowlock_"
			dropAll(t, db, d, prefix, table)
			t.Cleanup(func() { dropAll(t, db, d, prefix, table) })
			if _, err := db.Exec(usersDDL(d, table)); err != nil {
				t.Fatal(err)
			}
			seed(t, db, d, table, 500)
			retried := make(chan struct{}, 1)
			r, err := migrate.New(db, splitName(d, table, "mt_rowlock"), migrate.Options{
				StateTablePrefix: prefix, LockTimeout: 100 * time.Millisecond, RetryBackoff: 10 * time.Millisecond,
				Logger: slog.New(signalHandler{msg: "migrate: backfill batch retried", c: retried}),
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx := boundedCtx(t)
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			blocker, err := db.BeginTx(ctx, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := blocker.Exec("UPDATE " + qi(d, table) + " SET email = 'locked@x' WHERE id = 250"); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() { errc <- r.Backfill(ctx) }()
			<-retried
			select {
			case err := <-errc:
				t.Fatalf("Backfill ended while a row of its range was locked: %v", err)
			default:
			}
			if err := blocker.Commit(); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if bad, total := inconsistent(t, db, d, table, true); bad != 0 || total != 500 {
				t.Fatalf("%d of %d rows inconsistent", bad, total)
			}
		})
	}
}

// gateHandler blocks the runner's log call for the given message until
// gate is closed, after signalling ready: a way to act at an exact point
// of a phase call.
type gateHandler struct {
	msg, attr string
	ready     chan struct{}
	gate      chan struct{}
	once      *sync.Once
}

func (h gateHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h gateHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != h.msg {
		return nil
	}
	match := false
	r.Attrs(func(a slog.Attr) bool {
		if a.Value.String() == h.attr {
			match = true
		}
		return true
	})
	if match {
		h.once.Do(func() {
			close(h.ready)
			<-h.gate
		})
	}
	return nil
}
func (h gateHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h gateHandler) WithGroup(string) slog.Handler      { return h }

// TestSQLiteDDLBusyRetries: on SQLite a long write transaction holds the
// single writer lock. Once Start has recorded its phase, the test takes
// that lock; the DDL gives up after busy_timeout, retries, and application
// reads (WAL) keep completing meanwhile; after the commit Start finishes.
func TestSQLiteDDLBusyRetries(t *testing.T) {
	d := migrate.SQLite
	db := openDB(t, d)
	const table = "mt_busy_users"
	if _, err := db.Exec(usersDDL(d, table)); err != nil {
		t.Fatal(err)
	}
	seed(t, db, d, table, 100)
	ready, gate := make(chan struct{}), make(chan struct{})
	var retries atomic.Int64
	retried := make(chan struct{}, 100)
	m := &migrate.Migration{Name: "mt_busy_add", Operations: []migrate.Operation{
		migrate.AddColumn{Table: table, Column: migrate.Column{Name: "nickname", Type: "TEXT"}},
	}}
	r, err := migrate.New(db, m, migrate.Options{
		LockTimeout: 100 * time.Millisecond, RetryBackoff: 10 * time.Millisecond, MaxRetryBackoff: 40 * time.Millisecond, DDLAttempts: 100000,
		Logger: slog.New(gateHandler{msg: "migrate: phase", attr: string(migrate.PhaseExpanding), ready: ready, gate: gate, once: new(sync.Once)}),
		OnRetry: func(string, int, error) {
			retries.Add(1)
			select {
			case retried <- struct{}{}:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := boundedCtx(t)
	errc := make(chan error, 1)
	go func() { errc <- r.Start(ctx) }()
	<-ready
	blocker, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	if _, err := blocker.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	if _, err := blocker.ExecContext(ctx, "INSERT INTO "+qi(d, table)+" (name) VALUES ('long tx')"); err != nil {
		t.Fatal(err)
	}
	close(gate)
	<-retried
	<-retried
	for i := range 50 {
		var n int
		if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+qi(d, table)+" WHERE id > ?", i).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-errc:
		t.Fatalf("Start finished while the writer lock was held: %v", err)
	default:
	}
	if _, err := blocker.ExecContext(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(nickname) FROM " + qi(d, table)).Scan(&n); err != nil {
		t.Fatalf("column not added: %v", err)
	}
	t.Logf("DDL retried %d times behind the writer lock", retries.Load())
}
