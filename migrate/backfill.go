package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Progress reports one committed backfill batch.
// The zero value describes no batch; OnProgress never receives it.
type Progress struct {
	Migration string
	// Operation is the index of the Transform in Migration.Operations.
	Operation int
	Table     string
	// Rows is how many rows the backfill has visited so far, across runs.
	Rows int64
	// Filled is how many rows this run's batches filled (rows that a
	// writer had already synced through the triggers are visited, not
	// filled).
	Filled int64
	// LastKey is the checkpoint: every key <= LastKey is done.
	LastKey, MaxKey int64
	// Fraction is the share of the key range done, 0..1.
	Fraction float64
	// RowsPerSecond is this run's rate so far.
	RowsPerSecond float64
	// ETA estimates the time left at this run's rate (0 when unknown).
	ETA time.Duration
	// BatchSize and BatchDuration describe the batch just committed;
	// BatchSize is the number of rows it visited.
	BatchSize     int
	BatchDuration time.Duration
	// NextBatchSize is the adapted size of the next batch.
	NextBatchSize int
}

type checkpoint struct {
	minKey, maxKey, lastKey, rows int64
	done                          bool
}

// appSyncGuard refuses Backfill of a SyncApplication transform while an
// older version runs: without triggers, a row an old-version instance
// writes after its batch would go stale.
func (r *Runner) appSyncGuard(ctx context.Context, _ Phase) error {
	for _, op := range r.m.Operations {
		if t, ok := op.(Transform); ok && t.Sync == SyncApplication {
			return r.checkInstances(ctx)
		}
	}
	return nil
}

func (r *Runner) backfillAll(ctx context.Context) error {
	for i, op := range r.m.Operations {
		if t, ok, err := r.asTransform(ctx, op, false); err != nil {
			return err
		} else if ok {
			if err := r.backfill(ctx, i, t); err != nil {
				return err
			}
			continue
		}
		q := r.d.quote
		switch o := op.(type) {
		case SetNotNull:
			if r.d == PostgreSQL {
				// VALIDATE scans under SHARE UPDATE EXCLUSIVE: writes go on.
				if err := r.execDDL(ctx, "ALTER TABLE "+q(o.Table)+" VALIDATE CONSTRAINT "+q(r.checkName(i))); err != nil {
					return err
				}
			}
		case AddForeignKey:
			if r.d == PostgreSQL {
				if err := r.execDDL(ctx, "ALTER TABLE "+q(o.Table)+" VALIDATE CONSTRAINT "+q(o.Name)); err != nil {
					return err
				}
			} else if err := r.checkOrphans(ctx, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkOrphans is MySQL's VALIDATE: the key was added without checking
// existing rows, so look for one that violates it.
func (r *Runner) checkOrphans(ctx context.Context, o AddForeignKey) error {
	q := r.d.quote
	on := make([]string, len(o.Columns))
	notNull := make([]string, len(o.Columns))
	for i := range o.Columns {
		on[i] = "c." + q(o.Columns[i]) + " = p." + q(o.RefColumns[i])
		notNull[i] = "c." + q(o.Columns[i]) + " IS NOT NULL"
	}
	stmt := "SELECT 1 FROM " + q(o.Table) + " c LEFT JOIN " + q(o.RefTable) + " p ON " + strings.Join(on, " AND ") +
		" WHERE " + strings.Join(notNull, " AND ") + " AND p." + q(o.RefColumns[0]) + " IS NULL LIMIT 1"
	var one int
	err := r.db.QueryRowContext(ctx, stmt).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("migrate: validate foreign key %q: %w", o.Name, err)
	}
	return fmt.Errorf("migrate: foreign key %q: %w: table %q has rows whose (%s) has no match in %q; fix them, then call Backfill again",
		o.Name, ErrInvalid, o.Table, strings.Join(o.Columns, ", "), o.RefTable)
}

func (r *Runner) loadCheckpoint(ctx context.Context, i int) (*checkpoint, error) {
	var c checkpoint
	var done int
	err := r.db.QueryRowContext(ctx, r.d.rebind(`SELECT min_key, max_key, last_key, rows_done, done FROM `+r.t.checkpoints+` WHERE migration = ? AND op = ?`),
		r.m.Name, i).Scan(&c.minKey, &c.maxKey, &c.lastKey, &c.rows, &done)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: read checkpoint: %w", err)
	}
	c.done = done != 0
	return &c, nil
}

// backfill fills the new columns of rows with keys up to the maximum key
// seen when it first started; rows inserted later get their values from
// the triggers, which is why it finishes under any sustained insert rate.
// Each batch is one transaction that also advances the checkpoint, so a
// crash loses at most the batch in flight.
//
// On MySQL/MariaDB and SQLite a batch is a no-op UPDATE (old = old) of the
// next keys whose new columns are still NULL: the UPDATE trigger derives the
// new columns. On PostgreSQL the batch sets the new columns with the same
// Up expressions directly, skipping the trigger (one set-based statement
// instead of a PL/pgSQL call per row). Either way backfill and live writes
// share one definition of the mapping.
func (r *Runner) backfill(ctx context.Context, i int, t Transform) error {
	p, err := r.plan(ctx, t)
	if err != nil {
		return err
	}
	cp, err := r.loadCheckpoint(ctx, i)
	if err != nil {
		return err
	}
	q := r.d.quote
	tbl, key := q(p.table), q(p.key)
	if cp == nil {
		var lo, hi sql.NullInt64
		if err := r.db.QueryRowContext(ctx, "SELECT MIN("+key+"), MAX("+key+") FROM "+tbl).Scan(&lo, &hi); err != nil {
			return fmt.Errorf("migrate: backfill %q: key range: %w", p.table, err)
		}
		cp = &checkpoint{minKey: lo.Int64, maxKey: hi.Int64, lastKey: lo.Int64 - 1}
		if !lo.Valid {
			cp = &checkpoint{done: true}
		}
		done := 0
		if cp.done {
			done = 1
		}
		if _, err := r.db.ExecContext(ctx, r.d.rebind(`INSERT INTO `+r.t.checkpoints+` (migration, op, min_key, max_key, last_key, rows_done, done, updated_ms) VALUES (?, ?, ?, ?, ?, 0, ?, ?)`),
			r.m.Name, i, cp.minKey, cp.maxKey, cp.lastKey, done, nowMS()); err != nil {
			return fmt.Errorf("migrate: backfill %q: write checkpoint: %w", p.table, err)
		}
	}
	if cp.done {
		return nil
	}
	r.log.InfoContext(ctx, "migrate: backfill", "migration", r.m.Name, "table", p.table, "from_key", cp.lastKey, "to_key", cp.maxKey)

	newNull := make([]string, len(p.newCols))
	for j, c := range p.newCols {
		newNull[j] = tbl + "." + q(c) + " IS NULL"
	}
	set := make([]string, len(p.newCols))
	for j, c := range p.newCols {
		set[j] = q(c) + " = " + p.upTable[c]
	}
	touch := q(p.oldCols[0]) + " = " + q(p.oldCols[0])
	if t.Sync == SyncApplication {
		touch = strings.Join(set, ", ") // no trigger: set the new columns directly
	}
	var batchSQL, boundSQL, updSQL string
	switch r.d {
	case PostgreSQL:
		// One round trip: pick the next keys, set the new columns from the
		// Up expressions, report the highest key and the count. The
		// session has baton.backfill=on, so the dual-write trigger's WHEN
		// clause skips these rows; a row a writer changed meanwhile is
		// re-checked by PostgreSQL (EvalPlanQual) and skipped if the
		// trigger already filled it.
		// The UPDATE scans the key range (an index range scan) rather than
		// joining the picked keys, which halves its cost.
		batchSQL = `WITH b AS (SELECT MAX(k) AS hi, COUNT(*) AS n FROM (SELECT ` + key + ` AS k FROM ` + tbl + ` WHERE ` + key + ` > $1 AND ` + key + ` <= $2 ORDER BY ` + key + ` LIMIT $3) s),
u AS (UPDATE ` + tbl + ` SET ` + strings.Join(set, ", ") + ` WHERE ` + key + ` > $1 AND ` + key + ` <= (SELECT hi FROM b) AND ` + strings.Join(newNull, " AND ") + ` RETURNING 1)
SELECT (SELECT hi FROM b), (SELECT n FROM b), (SELECT COUNT(*) FROM u)`
	default:
		boundSQL = `SELECT MAX(k), COUNT(*) FROM (SELECT ` + key + ` AS k FROM ` + tbl + ` WHERE ` + key + ` > ? AND ` + key + ` <= ? ORDER BY ` + key + ` LIMIT ?) s`
		updSQL = `UPDATE ` + tbl + ` SET ` + touch + ` WHERE ` + key + ` > ? AND ` + key + ` <= ? AND ` + strings.Join(newNull, " AND ")
	}
	cpSQL := r.d.rebind(`UPDATE ` + r.t.checkpoints + ` SET last_key = ?, rows_done = rows_done + ?, done = ?, updated_ms = ? WHERE migration = ? AND op = ?`)

	c, err := r.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	// Short lock waits: a batch that meets a row lock held by the
	// application gives up quickly and is retried smaller, rather than
	// holding its own locks while it waits.
	if err := r.d.setLockTimeout(ctx, c, r.opts.LockTimeout); err != nil {
		return err
	}
	if r.d == PostgreSQL {
		if _, err := c.ExecContext(ctx, "SELECT set_config('"+pgBackfillGUC+"', 'on', false)"); err != nil {
			return err
		}
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if r.d != SQLite {
			if r.d == PostgreSQL {
				if _, err := c.ExecContext(rctx, "RESET "+pgBackfillGUC); err != nil {
					_ = c.Raw(func(any) error { return driverBadConn })
				}
			}
			if err := r.d.resetLockTimeout(rctx, c); err != nil {
				_ = c.Raw(func(any) error { return driverBadConn })
			}
		} else {
			// The pinned connection keeps the backfill's busy_timeout; drop
			// it instead of returning it to the pool.
			_ = c.Raw(func(any) error { return driverBadConn })
		}
	}()

	size := r.opts.BatchSize
	start := time.Now()
	var runRows, runFilled int64
	attrs := metric.WithAttributes(attribute.String("migration", r.m.Name), attribute.String("table", p.table))
	failures := 0
	for cp.lastKey < cp.maxKey {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		hi, n, filled, err := r.batch(ctx, c, cp, size, batchSQL, boundSQL, updSQL, cpSQL, i)
		d := time.Since(t0)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			failures++
			if !r.d.retryable(err) || failures > r.opts.DDLAttempts {
				return fmt.Errorf("migrate: backfill %q at key %d: %w", p.table, cp.lastKey, err)
			}
			size = max(size/2, r.opts.MinBatchSize)
			r.log.InfoContext(ctx, "migrate: backfill batch retried", "migration", r.m.Name, "err", err, "next_size", size)
			if err := sleepCtx(ctx, backoff(r.opts.RetryBackoff, r.opts.MaxRetryBackoff, failures)); err != nil {
				return err
			}
			continue
		}
		failures = 0
		cp.lastKey, cp.rows = hi, cp.rows+n
		runRows += n
		runFilled += filled
		r.inst.rows.Add(ctx, n, attrs)
		r.inst.batchDuration.Record(ctx, d.Seconds(), attrs)
		size = adapt(size, d, r.opts.BatchTarget, r.opts.MinBatchSize, r.opts.MaxBatchSize)
		pr := Progress{Migration: r.m.Name, Operation: i, Table: p.table, Rows: cp.rows, Filled: runFilled, LastKey: cp.lastKey, MaxKey: cp.maxKey,
			BatchSize: int(n), BatchDuration: d, NextBatchSize: size}
		if span := cp.maxKey - cp.minKey + 1; span > 0 {
			pr.Fraction = min(float64(cp.lastKey-cp.minKey+1)/float64(span), 1)
		}
		if el := time.Since(start).Seconds(); el > 0 {
			pr.RowsPerSecond = float64(runRows) / el
			if pr.Fraction > 0 && pr.RowsPerSecond > 0 {
				left := float64(cp.rows)/pr.Fraction - float64(cp.rows)
				pr.ETA = time.Duration(left / pr.RowsPerSecond * float64(time.Second))
			}
		}
		r.inst.progress.Record(ctx, pr.Fraction, attrs)
		r.inst.eta.Record(ctx, pr.ETA.Seconds(), attrs)
		if r.opts.OnProgress != nil {
			r.opts.OnProgress(pr)
		}
		if r.opts.Throttle > 0 && cp.lastKey < cp.maxKey {
			if err := sleepCtx(ctx, r.opts.Throttle); err != nil {
				return err
			}
		}
	}
	r.log.InfoContext(ctx, "migrate: backfill done", "migration", r.m.Name, "table", p.table, "rows", cp.rows, "seconds", time.Since(start).Seconds())
	return nil
}

// adapt scales the batch size toward the time target, by at most a factor
// of four per batch, so that one slow batch (a checkpoint, a vacuum) does
// not collapse the size and one fast batch does not overshoot.
func adapt(size int, took, target time.Duration, lo, hi int) int {
	if took <= 0 {
		took = time.Microsecond
	}
	next := int(float64(size) * float64(target) / float64(took))
	next = min(max(next, size/4), size*4)
	return min(max(next, lo), hi)
}

// batch runs one batch transaction and returns the new checkpoint key, the
// rows visited and the rows filled.
func (r *Runner) batch(ctx context.Context, c *sql.Conn, cp *checkpoint, size int, batchSQL, boundSQL, updSQL, cpSQL string, op int) (int64, int64, int64, error) {
	var hi sql.NullInt64
	var n, filled int64
	run := func(ex func(string, ...any) (sql.Result, error), qr func(string, ...any) *sql.Row) error {
		if r.d == PostgreSQL {
			if err := qr(batchSQL, cp.lastKey, cp.maxKey, size).Scan(&hi, &n, &filled); err != nil {
				return err
			}
		} else {
			if err := qr(boundSQL, cp.lastKey, cp.maxKey, size).Scan(&hi, &n); err != nil {
				return err
			}
			if hi.Valid {
				res, err := ex(updSQL, cp.lastKey, hi.Int64)
				if err != nil {
					return err
				}
				filled, _ = res.RowsAffected()
			}
		}
		if !hi.Valid { // no rows left below maxKey
			hi = sql.NullInt64{Int64: cp.maxKey, Valid: true}
		}
		done := 0
		if hi.Int64 >= cp.maxKey {
			done = 1
		}
		_, err := ex(cpSQL, hi.Int64, n, done, nowMS(), r.m.Name, op)
		return err
	}
	if r.d == SQLite {
		// BEGIN IMMEDIATE takes the writer lock up front (waiting up to
		// busy_timeout); a deferred transaction that reads first and then
		// writes fails with SQLITE_BUSY without waiting when another writer
		// committed in between.
		if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
			return 0, 0, 0, err
		}
		err := run(func(s string, a ...any) (sql.Result, error) { return c.ExecContext(ctx, s, a...) },
			func(s string, a ...any) *sql.Row { return c.QueryRowContext(ctx, s, a...) })
		if err != nil {
			_, _ = c.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			return 0, 0, 0, err
		}
		if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
			_, _ = c.ExecContext(context.WithoutCancel(ctx), "ROLLBACK")
			return 0, 0, 0, err
		}
		return hi.Int64, n, filled, nil
	}
	// READ COMMITTED: on MySQL/MariaDB it avoids gap locks on the key range,
	// which would block inserts at the end of the table.
	tx, err := c.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return 0, 0, 0, err
	}
	err = run(func(s string, a ...any) (sql.Result, error) { return tx.ExecContext(ctx, s, a...) },
		func(s string, a ...any) *sql.Row { return tx.QueryRowContext(ctx, s, a...) })
	if err != nil {
		_ = tx.Rollback()
		return 0, 0, 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, 0, err
	}
	return hi.Int64, n, filled, nil
}
