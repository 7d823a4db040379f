package migrate_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/migrate"
)

// TestCompleteWaitsForReadNewEverywhere: Complete does not drop the old
// columns while a live instance that acts on the migration still acts on
// a phase before read_new; it waits (bounded), names the laggard when it
// gives up, and proceeds once every such instance has observed read_new.
func TestCompleteWaitsForReadNewEverywhere(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			f := newFixture(t, d, "mt_cu", 100)
			db, table, prefix, name := f.db, f.table, f.prefix, f.name
			opts := migrate.Options{StateTablePrefix: prefix, CatchUpTimeout: 300 * time.Millisecond, InstancePoll: 20 * time.Millisecond}
			r, err := migrate.New(db, splitName(d, table, name), opts)
			if err != nil {
				t.Fatal(err)
			}
			reg := migrate.RegistryOptions{StateTablePrefix: prefix, Interval: 100 * time.Millisecond}
			// One instance declares the migration, one reads its phase with
			// Instance.Phase, one does neither (it does not act on it).
			reg.Migrations, reg.ID = []string{name}, "declared"
			declared, err := migrate.Register(ctx, db, "2.0.0", reg)
			if err != nil {
				t.Fatal(err)
			}
			defer declared.Close()
			reg.Migrations, reg.ID = nil, "reader"
			reader, err := migrate.Register(ctx, db, "2.0.0", reg)
			if err != nil {
				t.Fatal(err)
			}
			defer reader.Close()
			reg.ID = "bystander"
			bystander, err := migrate.Register(ctx, db, "2.0.0", reg)
			if err != nil {
				t.Fatal(err)
			}
			defer bystander.Close()
			for _, f := range []func(context.Context) error{r.Start, r.Backfill, r.SwitchReads} {
				if err := f(ctx); err != nil {
					t.Fatal(err)
				}
			}
			// The reader cached the phase before SwitchReads.
			if err := reader.Observe(ctx, name, migrate.PhaseBackfilled); err != nil {
				t.Fatal(err)
			}
			err = r.Complete(ctx)
			var le *migrate.LaggingError
			if !errors.As(err, &le) || !errors.Is(err, migrate.ErrLagging) || len(le.Lagging) != 2 ||
				!strings.Contains(err.Error(), "declared") || !strings.Contains(err.Error(), "reader") || strings.Contains(err.Error(), "bystander") {
				t.Fatalf("Complete with two instances behind: %v, want a *LaggingError naming declared and reader only", err)
			}
			if p, _ := r.Phase(ctx); p != migrate.PhaseReadNew || !hasColumn(t, db, d, table, "name") {
				t.Fatalf("phase %q after the refused Complete, want read_new with the old column in place", p)
			}
			if p, err := reader.Phase(ctx, name); err != nil || p != migrate.PhaseReadNew {
				t.Fatalf("reader.Phase: %q %v", p, err)
			}
			// Complete now waits for the declared instance, which catches up
			// while it waits.
			r2, err := migrate.New(db, splitName(d, table, name), migrate.Options{StateTablePrefix: prefix, CatchUpTimeout: 30 * time.Second, InstancePoll: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- r2.Complete(ctx) }()
			waitUntil(t, "Complete to be waiting for the declared instance", func() bool {
				lag, err := r2.Lagging(ctx)
				return err == nil && len(lag) == 1 && lag[0].ID == "declared"
			})
			select {
			case err := <-done:
				t.Fatalf("Complete returned %v while an instance lagged", err)
			default:
			}
			if err := declared.Observe(ctx, name, migrate.PhaseReadNew); err != nil {
				t.Fatal(err)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-ctx.Done():
				t.Fatal("Complete did not finish within a minute of the last instance catching up")
			}
			if hasColumn(t, db, d, table, "name") {
				t.Fatal("old column still there after Complete")
			}
		})
	}
}
