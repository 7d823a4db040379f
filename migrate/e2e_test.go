package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/migrate"
)

// fleet simulates old- and new-version application instances writing and
// reading a users table while the migration moves through its phases.
type fleet struct {
	t      *testing.T
	db     *sql.DB
	d      migrate.Dialect
	table  string
	opts   migrate.Options
	name   string
	seeded int

	errs     atomic.Int64
	firstErr atomic.Value
	ops      atomic.Int64
	// seenReadNew counts new writers that observed Phase.ReadNew.
	seenReadNew atomic.Int64
	newWriters  int
}

func (f *fleet) fail(err error) {
	f.errs.Add(1)
	f.firstErr.CompareAndSwap(nil, err)
}

// oldWriter writes and reads only the old column, like the old version.
func (f *fleet) oldWriter(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(uint64(id), 1))
	d, tb := f.d, qi(f.d, f.table)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for n := 0; n < 200000; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		k := rng.IntN(1000000)
		var err error
		switch n % 3 {
		case 0:
			_, err = f.db.ExecContext(ctx, "INSERT INTO "+tb+" (name, email) VALUES ("+ph(d, 1)+", "+ph(d, 2)+")",
				fmt.Sprintf("o%d x%d", k, n), "old@example.com")
		case 1:
			_, err = f.db.ExecContext(ctx, "UPDATE "+tb+" SET name = "+ph(d, 1)+" WHERE id = "+ph(d, 2),
				fmt.Sprintf("u%d y%d", k, n), 1+rng.IntN(f.seeded))
		case 2:
			var name sql.NullString
			err = f.db.QueryRowContext(ctx, "SELECT name FROM "+tb+" WHERE id = "+ph(d, 1), 1+rng.IntN(f.seeded)).Scan(&name)
			if err == nil && !name.Valid {
				err = errors.New("old reader saw NULL name")
			}
		}
		if err != nil && ctx.Err() == nil {
			f.fail(fmt.Errorf("old writer: %w", err))
		}
		f.ops.Add(1)
	}
}

// newWriter reads the phase like the new version: before ReadNew it writes
// both columns or only the new ones, from ReadNew on only the new ones
// (the old column disappears at Complete), and reads the side the phase
// says.
func (f *fleet) newWriter(ctx context.Context, id int) {
	rng := rand.New(rand.NewPCG(uint64(id), 2))
	d, tb := f.d, qi(f.d, f.table)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	acked := false
	for n := 0; n < 200000; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		p, err := migrate.CurrentPhase(ctx, f.db, f.opts, f.name)
		if err != nil {
			if ctx.Err() == nil {
				f.fail(fmt.Errorf("new writer: phase: %w", err))
			}
			continue
		}
		readNew := p.ReadNew()
		if readNew && !acked {
			acked = true
			f.seenReadNew.Add(1)
		}
		k := rng.IntN(1000000)
		first, last := fmt.Sprintf("n%d", k), fmt.Sprintf("m%d", n)
		both := !readNew && n%2 == 0
		switch n % 3 {
		case 0:
			if both {
				_, err = f.db.ExecContext(ctx, "INSERT INTO "+tb+" (name, first_name, last_name, email) VALUES ("+ph(d, 1)+", "+ph(d, 2)+", "+ph(d, 3)+", "+ph(d, 4)+")",
					first+" "+last, first, last, "new@example.com")
			} else {
				_, err = f.db.ExecContext(ctx, "INSERT INTO "+tb+" (first_name, last_name, email) VALUES ("+ph(d, 1)+", "+ph(d, 2)+", "+ph(d, 3)+")",
					first, last, "new@example.com")
			}
		case 1:
			if both {
				_, err = f.db.ExecContext(ctx, "UPDATE "+tb+" SET name = "+ph(d, 1)+", first_name = "+ph(d, 2)+", last_name = "+ph(d, 3)+" WHERE id = "+ph(d, 4),
					first+" "+last, first, last, 1+rng.IntN(f.seeded))
			} else {
				_, err = f.db.ExecContext(ctx, "UPDATE "+tb+" SET first_name = "+ph(d, 1)+", last_name = "+ph(d, 2)+" WHERE id = "+ph(d, 3),
					first, last, 1+rng.IntN(f.seeded))
			}
		case 2:
			if readNew {
				var a, b sql.NullString
				err = f.db.QueryRowContext(ctx, "SELECT first_name, last_name FROM "+tb+" WHERE id = "+ph(d, 1), 1+rng.IntN(f.seeded)).Scan(&a, &b)
				if err == nil && (!a.Valid || !b.Valid) {
					err = errors.New("new reader saw NULL first_name/last_name after SwitchReads")
				}
			} else {
				var name sql.NullString
				err = f.db.QueryRowContext(ctx, "SELECT name FROM "+tb+" WHERE id = "+ph(d, 1), 1+rng.IntN(f.seeded)).Scan(&name)
			}
		}
		if err != nil && ctx.Err() == nil {
			f.fail(fmt.Errorf("new writer (phase %s): %w", p, err))
		}
		f.ops.Add(1)
	}
}

// inconsistent counts rows whose new columns disagree with the old one
// (or are missing), in one statement's snapshot.
func inconsistent(t *testing.T, db *sql.DB, d migrate.Dialect, table string, requireNew bool) (bad, total int) {
	t.Helper()
	rows, err := db.Query("SELECT id, name, first_name, last_name FROM " + qi(d, table))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var name, first, last sql.NullString
		if err := rows.Scan(&id, &name, &first, &last); err != nil {
			t.Fatal(err)
		}
		total++
		if !first.Valid && !last.Valid && !requireNew {
			continue // not backfilled yet
		}
		want := first.String
		if last.String != "" {
			want += " " + last.String
		}
		if !first.Valid || !last.Valid || !name.Valid || name.String != want {
			if bad < 3 {
				t.Logf("inconsistent row %d: name=%v first=%v last=%v", id, name, first, last)
			}
			bad++
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return bad, total
}

func TestFourPhasesWithConcurrentOldAndNewWriters(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db := openDB(t, d)
			const table, prefix, name = "mt_e2e_users", "mt_e2e_", "mt_e2e_split"
			dropAll(t, db, d, prefix, table)
			t.Cleanup(func() { dropAll(t, db, d, prefix, table) })
			if _, err := db.Exec(usersDDL(d, table)); err != nil {
				t.Fatal(err)
			}
			const seeded = 3000
			seed(t, db, d, table, seeded)

			var batches atomic.Int64
			var maxKeys sync.Map // every MaxKey the backfill reported
			opts := migrate.Options{
				StateTablePrefix: prefix,
				BatchSize:        100,
				MaxBatchSize:     500,
				Throttle:         5 * time.Millisecond,
				OnProgress: func(p migrate.Progress) {
					batches.Add(1)
					maxKeys.Store(p.MaxKey, true)
				},
			}
			r, err := migrate.New(db, splitName(d, table, name), opts)
			if err != nil {
				t.Fatal(err)
			}
			ctx := boundedCtx(t)
			oldInst, err := migrate.Register(ctx, db, "1.4.0", migrate.RegistryOptions{StateTablePrefix: prefix, ID: "old-1"})
			if err != nil {
				t.Fatal(err)
			}
			defer oldInst.Close()
			newInst, err := migrate.Register(ctx, db, "2.0.0", migrate.RegistryOptions{StateTablePrefix: prefix, ID: "new-1"})
			if err != nil {
				t.Fatal(err)
			}
			defer newInst.Close()

			f := &fleet{t: t, db: db, d: d, table: table, opts: opts, name: name, seeded: seeded, newWriters: 2}
			oldCtx, stopOld := context.WithCancel(ctx)
			newCtx, stopNew := context.WithCancel(ctx)
			var oldWG, newWG sync.WaitGroup
			for i := range 2 {
				oldWG.Go(func() { f.oldWriter(oldCtx, i) })
			}
			defer func() { stopOld(); stopNew(); oldWG.Wait(); newWG.Wait() }()

			// Phase 1: expand. Only old code runs before it; new code is
			// deployed once the new columns exist.
			if err := r.Start(ctx); err != nil {
				t.Fatal(err)
			}
			for i := range f.newWriters {
				newWG.Go(func() { f.newWriter(newCtx, 10+i) })
			}
			// Phase 2: backfill under both writers.
			if err := r.Backfill(ctx); err != nil {
				t.Fatal(err)
			}
			if bad, total := inconsistent(t, db, d, table, true); bad != 0 {
				t.Fatalf("after backfill: %d of %d rows inconsistent", bad, total)
			}
			// The backfill's end is fixed when it starts: rows inserted
			// meanwhile (covered by the triggers) do not extend it.
			var keys []any
			maxKeys.Range(func(k, _ any) bool { keys = append(keys, k); return true })
			var top int64
			if err := db.QueryRow("SELECT MAX(id) FROM " + qi(d, table)).Scan(&top); err != nil {
				t.Fatal(err)
			}
			if len(keys) != 1 || top <= keys[0].(int64) {
				t.Fatalf("backfill end keys %v, table max key %d: want one end key, below the keys inserted during the backfill", keys, top)
			}
			// Phase 3: switch reads; wait until each new writer saw it.
			if err := r.SwitchReads(ctx); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "every new writer to see phase read_new", func() bool {
				return f.seenReadNew.Load() >= int64(f.newWriters) || f.errs.Load() != 0
			})
			if bad, total := inconsistent(t, db, d, table, true); bad != 0 {
				t.Fatalf("after switch: %d of %d rows inconsistent", bad, total)
			}
			// Phase 4: complete refuses while the old version heartbeats.
			err = r.Complete(ctx)
			var ov *migrate.OldVersionsError
			if !errors.As(err, &ov) || !errors.Is(err, migrate.ErrOldVersionsAlive) || len(ov.Alive) != 1 || ov.Alive[0].ID != "old-1" {
				t.Fatalf("Complete with old instance alive: got %v", err)
			}
			if p, _ := r.Phase(ctx); p != migrate.PhaseReadNew {
				t.Fatalf("refused Complete left phase %q, want read_new", p)
			}
			stopOld()
			oldWG.Wait()
			if bad, total := inconsistent(t, db, d, table, true); bad != 0 {
				t.Fatalf("before complete: %d of %d rows inconsistent", bad, total)
			} else {
				t.Logf("%v: %d rows consistent before contract", d, total)
			}
			if err := oldInst.Close(); err != nil {
				t.Fatal(err)
			}
			if err := r.Complete(ctx); err != nil {
				t.Fatal(err)
			}
			// New writers keep going on the contracted schema.
			before := f.ops.Load()
			waitUntil(t, "20 more writer operations after Complete", func() bool {
				return f.ops.Load() >= before+20 || f.errs.Load() != 0
			})
			stopNew()
			newWG.Wait()
			if p, _ := r.Phase(ctx); p != migrate.PhaseComplete {
				t.Fatalf("phase %q, want complete", p)
			}
			var nulls int
			if err := db.QueryRow("SELECT COUNT(*) FROM " + qi(d, table) + " WHERE first_name IS NULL OR last_name IS NULL").Scan(&nulls); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("SELECT name FROM " + qi(d, table)); err == nil {
				t.Fatal("old column still exists after Complete")
			}
			t.Logf("%v: writer ops %d, writer errors %d, rows without new values %d, batches %d", d, f.ops.Load(), f.errs.Load(), nulls, batches.Load())
			if n := f.errs.Load(); n != 0 {
				t.Fatalf("%d writer errors; first: %v", n, f.firstErr.Load())
			}
			if nulls != 0 {
				t.Fatalf("%d rows without new values", nulls)
			}
			if batches.Load() < 2 {
				t.Fatalf("backfill ran %d batches; the test wants several", batches.Load())
			}
		})
	}
}
