package migrate_test

import (
	"context"
	"errors"
	"testing"

	"github.com/batonhq/baton/migrate"
)

// TestRollbackRefusedWhileNewVersionsAlive: dropping the new columns under
// a running new-version instance would fail its queries, so Rollback waits
// for it to go (or ForceRollback), in every phase where the columns exist.
func TestRollbackRefusedWhileNewVersionsAlive(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db := openDB(t, d)
			const table, prefix, name = "mt_rbg_users", "mt_rbg_", "mt_rbg_split"
			dropAll(t, db, d, prefix, table)
			t.Cleanup(func() { dropAll(t, db, d, prefix, table) })
			if _, err := db.Exec(usersDDL(d, table)); err != nil {
				t.Fatal(err)
			}
			seed(t, db, d, table, 50)
			ctx := boundedCtx(t)
			r, err := migrate.New(db, splitName(d, table, name), migrate.Options{StateTablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			// An old instance never blocks Rollback.
			old, err := migrate.Register(ctx, db, "1.9.9", migrate.RegistryOptions{StateTablePrefix: prefix, ID: "old-1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { old.Close() })
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			newer, err := migrate.Register(ctx, db, "2.1.0", migrate.RegistryOptions{StateTablePrefix: prefix, ID: "new-1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { newer.Close() })

			refused := func(want migrate.Phase) {
				t.Helper()
				err := r.Rollback(ctx)
				var nv *migrate.NewVersionsError
				if !errors.As(err, &nv) || !errors.Is(err, migrate.ErrNewVersionsAlive) {
					t.Fatalf("Rollback in %q with a new instance alive: got %v", want, err)
				}
				if len(nv.Alive) != 1 || nv.Alive[0].ID != "new-1" || nv.Phase != want || nv.Version != "2.0.0" {
					t.Fatalf("NewVersionsError %+v", nv)
				}
				if p, _ := r.Phase(ctx); p != want {
					t.Fatalf("refused Rollback left phase %q, want %q", p, want)
				}
				if !hasColumn(t, db, d, table, "first_name") {
					t.Fatal("refused Rollback dropped a new column")
				}
			}
			refused(migrate.PhaseExpanded)
			if err := r.Backfill(ctx); err != nil {
				t.Fatal(err)
			}
			refused(migrate.PhaseBackfilled)
			if err := r.SwitchReads(ctx); err != nil {
				t.Fatal(err)
			}
			refused(migrate.PhaseReadNew)

			// The new instance goes away: Rollback proceeds.
			if err := newer.Close(); err != nil {
				t.Fatal(err)
			}
			if err := r.Rollback(ctx); err != nil {
				t.Fatal(err)
			}
			if p, _ := r.Phase(ctx); p != migrate.PhaseRolledBack || hasColumn(t, db, d, table, "first_name") {
				t.Fatalf("after Rollback: phase %q, first_name still there: %v", p, hasColumn(t, db, d, table, "first_name"))
			}

			// ForceRollback drops the columns with a new instance alive.
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			again, err := migrate.Register(ctx, db, "2.0.0", migrate.RegistryOptions{StateTablePrefix: prefix, ID: "new-2"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { again.Close() })
			if err := r.Rollback(ctx); !errors.Is(err, migrate.ErrNewVersionsAlive) {
				t.Fatalf("Rollback with new-2 alive: %v", err)
			}
			if err := r.ForceRollback(ctx); err != nil {
				t.Fatal(err)
			}
			if p, _ := r.Phase(ctx); p != migrate.PhaseRolledBack || hasColumn(t, db, d, table, "first_name") || hasColumn(t, db, d, table, "last_name") {
				t.Fatalf("after ForceRollback: phase %q", p)
			}
			if err := r.ForceRollback(ctx); err != nil {
				t.Fatalf("second ForceRollback is not a no-op: %v", err)
			}
		})
	}
}

// TestForceCompleteIgnoresOldInstances: Complete refuses while an old
// version heartbeats; ForceComplete contracts anyway.
func TestForceCompleteIgnoresOldInstances(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db := openDB(t, d)
			const table, prefix, name = "mt_fc_users", "mt_fc_", "mt_fc_split"
			dropAll(t, db, d, prefix, table)
			t.Cleanup(func() { dropAll(t, db, d, prefix, table) })
			if _, err := db.Exec(usersDDL(d, table)); err != nil {
				t.Fatal(err)
			}
			seed(t, db, d, table, 50)
			ctx := boundedCtx(t)
			r, err := migrate.New(db, splitName(d, table, name), migrate.Options{StateTablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			old, err := migrate.Register(ctx, db, "1.0.0", migrate.RegistryOptions{StateTablePrefix: prefix, ID: "old-1"})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { old.Close() })
			for _, f := range []func(context.Context) error{r.Start, r.Backfill} {
				if err := f(ctx); err != nil {
					t.Fatal(err)
				}
			}
			if err := r.ForceComplete(ctx); !errors.Is(err, migrate.ErrPhase) {
				t.Fatalf("ForceComplete before SwitchReads: %v", err)
			}
			if err := r.SwitchReads(ctx); err != nil {
				t.Fatal(err)
			}
			if err := r.Complete(ctx); !errors.Is(err, migrate.ErrOldVersionsAlive) {
				t.Fatalf("Complete with old-1 alive: %v", err)
			}
			if !hasColumn(t, db, d, table, "name") {
				t.Fatal("refused Complete dropped the old column")
			}
			if err := r.ForceComplete(ctx); err != nil {
				t.Fatal(err)
			}
			if p, _ := r.Phase(ctx); p != migrate.PhaseComplete {
				t.Fatalf("phase %q after ForceComplete", p)
			}
			if hasColumn(t, db, d, table, "name") || !hasColumn(t, db, d, table, "first_name") {
				t.Fatal("ForceComplete did not contract")
			}
			// The triggers are gone too: a write of the new columns alone works.
			if _, err := db.Exec("INSERT INTO " + qi(d, table) + " (first_name, last_name, email) VALUES ('a', 'b', 'c@x')"); err != nil {
				t.Fatal(err)
			}
			if err := r.ForceComplete(ctx); err != nil {
				t.Fatalf("second ForceComplete is not a no-op: %v", err)
			}
		})
	}
}
