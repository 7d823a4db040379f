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
	// Operation is the index in Migration.Operations of the first
	// Transform on the table: one pass serves all the table's Transforms.
	Operation int
	Table     string
	// Rows is how many rows the backfill has visited so far, across runs.
	Rows int64
	// Filled is how many rows this run's batches filled (rows that a
	// writer had already synced through the triggers are visited, not
	// filled).
	Filled int64
	// LastKey is the checkpoint (every key <= LastKey is done) and MaxKey
	// the last key the pass visits, when the key is one integer column;
	// zero otherwise.
	LastKey, MaxKey int64
	// Fraction is the share done, 0..1: rows visited over the rows the
	// table had when the pass began.
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

// checkpoint is a backfill pass's progress: keys <= last are done.
type checkpoint struct {
	op        int   // the operation the checkpoint row is keyed by
	last, max []any // nil last: nothing done yet
	total     int64
	rows      int64
	done      bool
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

// backfillAll is Backfill's work: one pass per table for all its
// Transforms, then what the new columns carry is validated (NOT NULL) or
// built online (indexes), then SetNotNull and AddForeignKey are validated.
func (r *Runner) backfillAll(ctx context.Context) error {
	p, err := r.prepare(ctx)
	if err != nil {
		return err
	}
	for _, table := range p.tables {
		ops := p.onTable(table)
		if err := r.backfillTable(ctx, table, ops); err != nil {
			return err
		}
		for _, o := range ops {
			if err := r.buildCarried(ctx, o); err != nil {
				return err
			}
		}
	}
	nn, fk := r.im.notNull(), r.im.foreignKey()
	for i, op := range r.m.Operations {
		switch o := op.(type) {
		case SetNotNull:
			if s := nn.validate(o.Table, r.checkName(i, -1)); s != "" {
				if err := r.execDDL(ctx, s); err != nil {
					return err
				}
			}
		case AddForeignKey:
			if s := fk.validate(o.Table, o.Name); s != "" {
				if err := r.execDDL(ctx, s); err != nil {
					return err
				}
			} else if err := r.checkOrphans(ctx, o); err != nil {
				return err
			}
		}
	}
	return nil
}

// buildCarried validates the NOT NULL a new column carries and builds the
// indexes it carries (online, under their temporary names).
func (r *Runner) buildCarried(ctx context.Context, o *opPlan) error {
	q := r.d.quote
	nn := r.im.notNull()
	for j, c := range o.saved.New {
		if !c.NotNull {
			continue
		}
		if nn.supported {
			if s := nn.validate(o.t.Table, r.checkName(o.op, j)); s != "" {
				if err := r.execDDL(ctx, s); err != nil {
					return err
				}
				continue
			}
		}
		var n int64
		if err := r.db.QueryRowContext(ctx, "SELECT count(*) FROM "+q(o.t.Table)+" WHERE "+q(c.Name)+" IS NULL").Scan(&n); err != nil {
			return fmt.Errorf("migrate: check NOT NULL of %q: %w", c.Name, err)
		}
		if n > 0 {
			return fmt.Errorf("%w: migration %q: %d row(s) of table %q have NULL in new column %q, which must be NOT NULL: the up expression gave NULL; fix them, then call Backfill again",
				ErrInvalid, r.m.Name, n, o.t.Table, c.Name)
		}
	}
	for _, ix := range o.saved.Indexes {
		if err := r.im.createIndex(ctx, r, CreateIndex{Table: o.t.Table, Name: ix.Temp, Columns: ix.Columns, Unique: ix.Unique}); err != nil {
			return err
		}
	}
	for _, k := range o.saved.Constraints {
		var err error
		switch {
		case k.Incoming: // moved at Complete
		case r.im.caps().notValid:
			err = r.execDDL(ctx, "ALTER TABLE "+q(o.t.Table)+" VALIDATE CONSTRAINT "+q(k.Temp))
		case k.Kind == "FOREIGN KEY":
			err = r.checkOrphans(ctx, k.FK)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkOrphans is VALIDATE where the dialect has none: the key was added
// without checking existing rows, so look for one that violates it.
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

func (r *Runner) loadCheckpoint(ctx context.Context, op int) (*checkpoint, error) {
	c := checkpoint{op: op}
	var last, maxKey sql.NullString
	var done int
	err := r.db.QueryRowContext(ctx, r.d.rebind(`SELECT last_key, max_key, total, rows_done, done FROM `+r.t.backfill+` WHERE migration = ? AND op = ?`),
		r.m.Name, op).Scan(&last, &maxKey, &c.total, &c.rows, &done)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: read checkpoint: %w", err)
	}
	c.done = done != 0
	if last.Valid {
		if c.last, err = decodeKey(last.String); err != nil {
			return nil, err
		}
	}
	if maxKey.Valid {
		if c.max, err = decodeKey(maxKey.String); err != nil {
			return nil, err
		}
	}
	return &c, nil
}

// startCheckpoint records a new pass over table: it ends at the highest
// key the table has now (rows inserted later are written through the
// triggers, which is why the pass finishes under any insert rate).
func (r *Runner) startCheckpoint(ctx context.Context, op int, table string, key []string) (*checkpoint, error) {
	q := r.d.quote
	cp := &checkpoint{op: op}
	maxVals := make([]any, len(key))
	ptrs := make([]any, len(key))
	for i := range maxVals {
		ptrs[i] = &maxVals[i]
	}
	cols := keyOrder(r.im, "", key, false)
	err := r.db.QueryRowContext(ctx, "SELECT "+cols+" FROM "+q(table)+" ORDER BY "+keyOrder(r.im, "", key, true)+" LIMIT 1").Scan(ptrs...)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		cp.done = true
	case err != nil:
		return nil, fmt.Errorf("migrate: backfill %q: last key: %w", table, err)
	default:
		cp.max = normalizeKey(maxVals)
		if err := r.db.QueryRowContext(ctx, "SELECT count(*) FROM "+q(table)).Scan(&cp.total); err != nil {
			return nil, fmt.Errorf("migrate: backfill %q: count: %w", table, err)
		}
	}
	var maxKey any
	if cp.max != nil {
		s, err := encodeKey(cp.max)
		if err != nil {
			return nil, err
		}
		maxKey = s
	}
	done := 0
	if cp.done {
		done = 1
	}
	err = r.lockedWrite(ctx, "write checkpoint", func(tx queryer) error {
		_, err := tx.ExecContext(ctx, r.d.rebind(`INSERT INTO `+r.t.backfill+` (migration, op, last_key, max_key, total, rows_done, done, updated_ms) VALUES (?, ?, NULL, ?, ?, 0, ?, `+r.im.nowMS()+`)`),
			r.m.Name, op, maxKey, cp.total, done)
		return err
	})
	return cp, err
}

// normalizeKey turns what drivers scan into the types encodeKey keeps
// (integers as int64, text as string).
func normalizeKey(vals []any) []any {
	out := make([]any, len(vals))
	for i, v := range vals {
		switch x := v.(type) {
		case int32:
			out[i] = int64(x)
		case int:
			out[i] = int64(x)
		case uint64:
			out[i] = int64(x)
		default:
			out[i] = v
		}
	}
	return out
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

// backfillTable runs table's pass for all of ops, resuming its checkpoint.
func (r *Runner) backfillTable(ctx context.Context, table string, ops []*opPlan) error {
	cpOp := ops[0].op
	cp, err := r.loadCheckpoint(ctx, cpOp)
	if err != nil {
		return err
	}
	b := r.newPass(table, ops)
	if cp == nil {
		if cp, err = r.startCheckpoint(ctx, cpOp, table, b.key); err != nil {
			return err
		}
	}
	if cp.done {
		return nil
	}
	r.log.InfoContext(ctx, "migrate: backfill", "migration", r.m.Name, "table", table, "rows", cp.total, "done", cp.rows)

	c, err := r.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	// Short lock waits: a batch that meets a row lock held by the
	// application gives up quickly and is retried smaller, rather than
	// holding its own locks while it waits.
	restoreLock, err := r.im.lockTimeout(ctx, c, r.opts.LockTimeout)
	if err != nil {
		return err
	}
	restoreSession, err := r.im.backfillSession(ctx, c)
	if err != nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if restoreSession == nil || restoreSession(rctx) != nil || restoreLock(rctx) != nil {
			_ = c.Raw(func(any) error { return driverBadConn })
		}
	}()

	size := r.opts.BatchSize
	start := time.Now()
	var runRows, runFilled int64
	attrs := metric.WithAttributes(attribute.String("migration", r.m.Name), attribute.String("table", table))
	failures := 0
	for !cp.done {
		if err := ctx.Err(); err != nil {
			return err
		}
		t0 := time.Now()
		res, err := r.batch(ctx, c, b, cp, size)
		d := time.Since(t0)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if errors.Is(err, ErrLocked) {
				return err
			}
			failures++
			if !r.im.retryable(err) || failures > r.opts.DDLAttempts {
				return fmt.Errorf("migrate: backfill %q after %d rows: %w", table, cp.rows, err)
			}
			size = max(size/2, r.opts.MinBatchSize)
			r.log.InfoContext(ctx, "migrate: backfill batch retried", "migration", r.m.Name, "err", err, "next_size", size)
			if err := sleepCtx(ctx, backoff(r.opts.RetryBackoff, r.opts.MaxRetryBackoff, failures)); err != nil {
				return err
			}
			continue
		}
		failures = 0
		cp.last, cp.rows, cp.done = res.last, cp.rows+res.visited, res.done
		runRows += res.visited
		runFilled += res.filled
		r.inst.rows.Add(ctx, res.visited, attrs)
		r.inst.batchDuration.Record(ctx, d.Seconds(), attrs)
		size = adapt(size, d, r.opts.BatchTarget, r.opts.MinBatchSize, r.opts.MaxBatchSize)
		r.report(ctx, cp, Progress{Migration: r.m.Name, Operation: cpOp, Table: table, Rows: cp.rows, Filled: runFilled,
			LastKey: keyInt(cp.last), MaxKey: keyInt(cp.max), BatchSize: int(res.visited), BatchDuration: d, NextBatchSize: size}, start, runRows, attrs)
		if r.opts.Throttle > 0 && !cp.done {
			if err := sleepCtx(ctx, r.opts.Throttle); err != nil {
				return err
			}
		}
	}
	r.log.InfoContext(ctx, "migrate: backfill done", "migration", r.m.Name, "table", table, "rows", cp.rows, "seconds", time.Since(start).Seconds())
	return nil
}

// report fills in the rates of pr and publishes it.
func (r *Runner) report(ctx context.Context, cp *checkpoint, pr Progress, start time.Time, runRows int64, attrs metric.MeasurementOption) {
	switch {
	case cp.done:
		pr.Fraction = 1
	case cp.total > 0:
		pr.Fraction = min(float64(cp.rows)/float64(cp.total), 1)
	}
	pr.Fraction = max(pr.Fraction, 0)
	if el := time.Since(start).Seconds(); el > 0 {
		pr.RowsPerSecond = float64(runRows) / el
		if pr.Fraction > 0 && pr.Fraction < 1 && pr.RowsPerSecond > 0 {
			left := float64(cp.rows)/pr.Fraction - float64(cp.rows)
			pr.ETA = time.Duration(left / pr.RowsPerSecond * float64(time.Second))
		}
	}
	r.inst.progress.Record(ctx, pr.Fraction, attrs)
	r.inst.eta.Record(ctx, pr.ETA.Seconds(), attrs)
	if r.opts.OnProgress != nil {
		r.opts.OnProgress(pr)
	}
}
