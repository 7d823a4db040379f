package migrate_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/migrate"
)

func TestCancelledBackfillResumesFromCheckpoint(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db := openDB(t, d)
			const table, prefix, name = "mt_res_users", "mt_res_", "mt_res_split"
			dropAll(t, db, d, prefix, table)
			t.Cleanup(func() { dropAll(t, db, d, prefix, table) })
			if _, err := db.Exec(usersDDL(d, table)); err != nil {
				t.Fatal(err)
			}
			const seeded = 2000
			seed(t, db, d, table, seeded)
			ctx, cancel := context.WithCancel(boundedCtx(t))
			defer cancel()
			var first []migrate.Progress
			opts := migrate.Options{StateTablePrefix: prefix, BatchSize: 100, MaxBatchSize: 100,
				OnProgress: func(p migrate.Progress) {
					first = append(first, p)
					if len(first) == 3 {
						cancel()
					}
				}}
			r1, err := migrate.New(db, splitName(d, table, name), opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := r1.Start(ctx); err != nil {
				t.Fatal(err)
			}
			if err := r1.Backfill(ctx); !errors.Is(err, context.Canceled) {
				t.Fatalf("Backfill after cancel: %v", err)
			}
			if p, _ := r1.Phase(boundedCtx(t)); p != migrate.PhaseBackfilling {
				t.Fatalf("phase %q after cancelled backfill", p)
			}
			var second []migrate.Progress
			opts.OnProgress = func(p migrate.Progress) { second = append(second, p) }
			r2, err := migrate.New(db, splitName(d, table, name), opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := r2.Backfill(boundedCtx(t)); err != nil {
				t.Fatal(err)
			}
			last1 := first[len(first)-1]
			if got := second[0].Rows - int64(second[0].BatchSize); got != last1.Rows {
				t.Fatalf("second runner started at %d rows, checkpoint said %d", got, last1.Rows)
			}
			if end := second[len(second)-1]; end.Rows != seeded || end.LastKey != end.MaxKey {
				t.Fatalf("rows visited in total %d (want %d, each once), last key %d of %d", end.Rows, seeded, end.LastKey, end.MaxKey)
			}
			if bad, total := inconsistent(t, db, d, table, true); bad != 0 || total != seeded {
				t.Fatalf("%d of %d rows inconsistent", bad, total)
			}
		})
	}
}

// TestKilledRunnerResumes kills a child process running the backfill
// (SIGKILL: no cleanup, possibly inside a batch transaction) and resumes in
// a fresh runner.
func TestKilledRunnerResumes(t *testing.T) {
	for _, d := range dialects() {
		if d == migrate.MySQL {
			continue // same code path as PostgreSQL; keep the suite short
		}
		t.Run(d.String(), func(t *testing.T) {
			db := openDB(t, d)
			const table, prefix, name = "mt_kill_users", "mt_kill_", "mt_kill_split"
			dsn := os.Getenv("BATON_TEST_POSTGRES_DSN")
			if d == migrate.SQLite {
				dsn = sqliteDSN(filepath.Join(t.TempDir(), "kill.db"))
				db = openSQLiteAt(t, dsn)
			}
			dropAll(t, db, d, prefix, table)
			t.Cleanup(func() { dropAll(t, db, d, prefix, table) })
			if _, err := db.Exec(usersDDL(d, table)); err != nil {
				t.Fatal(err)
			}
			const seeded = 2000
			seed(t, db, d, table, seeded)
			opts := migrate.Options{StateTablePrefix: prefix, LeaseTTL: time.Second}
			r, err := migrate.New(db, splitName(d, table, name), opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(boundedCtx(t)); err != nil {
				t.Fatal(err)
			}

			cmd, err := testchild.Command(boundedCtx(t), "migrate-backfill", "MIGRATE_DIALECT="+d.String(), "MIGRATE_DSN="+dsn,
				"MIGRATE_PREFIX="+prefix, "MIGRATE_TABLE="+table, "MIGRATE_NAME="+name)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			lines := testchild.NewLines("backfill child", out)
			var printedRows int64
			for batches := 0; batches < 5; batches++ {
				line := lines.AwaitPrefix(t, "batch ", 0)
				var key int64
				if _, err := fmt.Sscanf(line, "batch %d %d", &key, &printedRows); err != nil {
					t.Fatal(err)
				}
			}
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = testchild.Wait(t, "backfill child", cmd, 0)
			<-lines.Done()

			var cpRows int64
			if err := db.QueryRow(`SELECT rows_done FROM "` + prefix + `backfill"`).Scan(&cpRows); err != nil {
				t.Fatal(err)
			}
			if cpRows < printedRows {
				t.Fatalf("checkpoint has %d rows, the child reported %d committed", cpRows, printedRows)
			}
			var resumed []migrate.Progress
			opts.OnProgress = func(p migrate.Progress) { resumed = append(resumed, p) }
			r2, err := migrate.New(db, splitName(d, table, name), opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := r2.Backfill(boundedCtx(t)); err != nil {
				t.Fatal(err)
			}
			if got := resumed[0].Rows - int64(resumed[0].BatchSize); got != cpRows {
				t.Fatalf("resumed at %d rows, checkpoint %d", got, cpRows)
			}
			if end := resumed[len(resumed)-1]; end.Rows != seeded {
				t.Fatalf("rows visited in total %d, want %d (none twice)", end.Rows, seeded)
			}
			if bad, total := inconsistent(t, db, d, table, true); bad != 0 || total != seeded {
				t.Fatalf("%d of %d rows inconsistent", bad, total)
			}
			t.Logf("%v: child killed after %d committed rows; resumed and finished", d, cpRows)
		})
	}
}
