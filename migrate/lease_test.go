package migrate_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/migrate"
)

// TestSQLiteLeaseLostIsNotCancellation: when another party takes the SQLite
// lease in the middle of a Backfill, the Backfill stops with an error
// wrapping ErrLocked, which the caller can tell from its own cancellation.
func TestSQLiteLeaseLostIsNotCancellation(t *testing.T) {
	d := migrate.SQLite
	db := openDB(t, d)
	const table, prefix, name = "mt_lease_users", "mt_lease_", "mt_lease_split"
	if _, err := db.Exec(usersDDL(d, table)); err != nil {
		t.Fatal(err)
	}
	seed(t, db, d, table, 500)
	lost := signalHandler{msg: "migrate: runner lease lost", c: make(chan struct{}, 1)}
	batches := 0
	opts := migrate.Options{StateTablePrefix: prefix, BatchSize: 100, MaxBatchSize: 100,
		LeaseTTL: 300 * time.Millisecond, Logger: slog.New(lost),
		OnProgress: func(migrate.Progress) {
			batches++
			if batches != 1 {
				return
			}
			// Another runner breaks the lease; the next renewal finds it gone.
			if _, err := db.Exec(`UPDATE "` + prefix + `locks" SET owner = 'another-runner'`); err != nil {
				t.Error(err)
				return
			}
			select {
			case <-lost.c:
			case <-time.After(10 * time.Second):
				t.Error("lease loss not noticed within 10s")
			}
		}}
	r, err := migrate.New(db, splitName(d, table, name), opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx := boundedCtx(t)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	err = r.Backfill(ctx)
	if !errors.Is(err, migrate.ErrLocked) || errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "lease lost") {
		t.Fatalf("Backfill after losing the lease: %v; want an error wrapping ErrLocked (lease lost), not context.Canceled", err)
	}
	if batches != 1 {
		t.Fatalf("%d batches committed after the lease was lost, want none", batches-1)
	}
	if p, _ := r.Phase(ctx); p != migrate.PhaseBackfilling {
		t.Fatalf("phase %q, want backfilling (resumable)", p)
	}
	// The lease was taken "by another runner" that never releases it;
	// once it expires, Backfill resumes and finishes.
	if err := r.Backfill(ctx); err != nil {
		t.Fatal(err)
	}
	if bad, total := inconsistent(t, db, d, table, true); bad != 0 || total != 500 {
		t.Fatalf("%d of %d rows inconsistent", bad, total)
	}
}
