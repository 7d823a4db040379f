package migrate_test

import (
	"errors"
	"testing"

	"github.com/batonhq/baton/migrate"
)

// TestApplicationSideSync runs a rename with SyncApplication: no triggers,
// the (new-version) application writes both columns as Phase.WriteOld and
// Phase.WriteNew say, and Backfill waits for the old version to be gone.
func TestApplicationSideSync(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db := openDB(t, d)
			const table, prefix = "mt_app_users", "mt_app_"
			dropAll(t, db, d, prefix, table)
			t.Cleanup(func() { dropAll(t, db, d, prefix, table) })
			if _, err := db.Exec(usersDDL(d, table)); err != nil {
				t.Fatal(err)
			}
			seed(t, db, d, table, 1000)
			m := &migrate.Migration{Name: "mt_app_rename", Version: "2", Operations: []migrate.Operation{migrate.Transform{
				Table: table, Sync: migrate.SyncApplication,
				Add:  []migrate.Column{{Name: "mail", Type: "VARCHAR(200)"}},
				Up:   map[string]migrate.Expr{"mail": {SQL: "email"}},
				Down: map[string]migrate.Expr{"email": {SQL: "mail"}},
				Drop: []string{"email"},
			}}}
			opts := migrate.Options{StateTablePrefix: prefix, BatchSize: 100}
			r, err := migrate.New(db, m, opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx := boundedCtx(t)
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			// write is the new version's write path.
			write := func(id int, v string) {
				t.Helper()
				p, err := migrate.CurrentPhase(ctx, db, opts, m.Name)
				if err != nil {
					t.Fatal(err)
				}
				var q string
				var args []any
				switch {
				case p.WriteOld() && p.WriteNew():
					q, args = "UPDATE "+qi(d, table)+" SET email = "+ph(d, 1)+", mail = "+ph(d, 2)+" WHERE id = "+ph(d, 3), []any{v, v, id}
				case p.WriteNew():
					q, args = "UPDATE "+qi(d, table)+" SET mail = "+ph(d, 1)+" WHERE id = "+ph(d, 2), []any{v, id}
				default:
					t.Fatalf("phase %q writes neither side", p)
				}
				if _, err := db.Exec(q, args...); err != nil {
					t.Fatal(err)
				}
			}
			old, err := migrate.Register(ctx, db, "1", migrate.RegistryOptions{StateTablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Backfill(ctx); !errors.Is(err, migrate.ErrOldVersionsAlive) {
				t.Fatalf("Backfill with an old version alive: %v", err)
			}
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			write(1, "before-backfill@x")
			if err := r.Backfill(ctx); err != nil {
				t.Fatal(err)
			}
			write(2, "after-backfill@x")
			var diff int
			if err := db.QueryRow("SELECT COUNT(*) FROM " + qi(d, table) + " WHERE mail IS NULL OR mail <> email").Scan(&diff); err != nil || diff != 0 {
				t.Fatalf("%d rows differ (%v)", diff, err)
			}
			if err := r.SwitchReads(ctx); err != nil {
				t.Fatal(err)
			}
			write(3, "after-switch@x")
			if err := r.Complete(ctx); err != nil {
				t.Fatal(err)
			}
			write(4, "after-complete@x")
			var got string
			if err := db.QueryRow("SELECT mail FROM "+qi(d, table)+" WHERE id = "+ph(d, 1), 2).Scan(&got); err != nil || got != "after-backfill@x" {
				t.Fatalf("row 2: %q %v", got, err)
			}
		})
	}
}
