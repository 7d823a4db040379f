package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Runner moves one migration through its phases. Its methods are safe for
// concurrent use, and runners in several processes exclude each other
// through the runner lock. Build one with New; the zero Runner is unusable.
//
// The phase methods are the interface a rollout plan drives:
//
//	Start(ctx)        expand: new columns, tables, indexes; dual-write triggers
//	Backfill(ctx)     fill the new columns of existing rows; validate constraints
//	SwitchReads(ctx)  record that applications read the new columns
//	Complete(ctx)     contract: drop triggers and old columns (refused while old versions run)
//	Rollback(ctx)     undo the expand, allowed until Complete (refused while new versions run)
//	Phase(ctx)        the recorded phase
//
// Each call is idempotent: calling it again after it succeeded returns nil,
// and calling it again after a crash resumes it.
type Runner struct {
	db   *sql.DB
	m    Migration
	opts Options
	d    Dialect
	t    tables
	log  *slog.Logger

	tracer trace.Tracer
	inst   instruments

	mu      sync.Mutex // serialises phase calls within this process
	stateOK atomic.Bool
}

type instruments struct {
	ddlRetries    metric.Int64Counter
	rows          metric.Int64Counter
	batchDuration metric.Float64Histogram
	progress      metric.Float64Gauge
	eta           metric.Float64Gauge
}

// New returns a runner for migration m on db. It validates m for the
// dialect and does not touch the database.
func New(db *sql.DB, m *Migration, opts Options) (*Runner, error) {
	if db == nil || m == nil {
		return nil, fmt.Errorf("%w: nil db or migration", ErrInvalid)
	}
	opts = opts.withDefaults()
	d := opts.Dialect
	if d == DialectAuto {
		var err error
		if d, err = DetectDialect(db); err != nil {
			return nil, err
		}
	}
	if !nameRe.MatchString(opts.StateTablePrefix) {
		return nil, fmt.Errorf("%w: StateTablePrefix %q: want letters, digits and '_'", ErrInvalid, opts.StateTablePrefix)
	}
	if err := m.Validate(d); err != nil {
		return nil, err
	}
	r := &Runner{db: db, m: *m, opts: opts, d: d, t: newTables(d, opts.StateTablePrefix), log: opts.Logger}
	r.m.Operations = slices.Clone(m.Operations)
	if r.log == nil {
		r.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	tp := opts.TracerProvider
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	r.tracer = tp.Tracer("github.com/batonhq/baton/migrate")
	mp := opts.MeterProvider
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	meter := mp.Meter("github.com/batonhq/baton/migrate")
	var err error
	if r.inst.ddlRetries, err = meter.Int64Counter("baton.migrate.ddl.retries", metric.WithDescription("DDL statements retried after a lock timeout")); err != nil {
		return nil, err
	}
	if r.inst.rows, err = meter.Int64Counter("baton.migrate.backfill.rows", metric.WithDescription("rows visited by the backfill")); err != nil {
		return nil, err
	}
	if r.inst.batchDuration, err = meter.Float64Histogram("baton.migrate.backfill.batch.duration", metric.WithUnit("s"), metric.WithDescription("duration of one backfill batch transaction")); err != nil {
		return nil, err
	}
	// Synchronous gauges rather than observable ones: the value is set
	// where it is known (after each batch) and the SDK keeps the last one,
	// so the final 1 and 0 stay visible after Backfill returns, with no
	// callback registration tying the Runner to the MeterProvider.
	if r.inst.progress, err = meter.Float64Gauge("baton.migrate.backfill.progress", metric.WithUnit("1"), metric.WithDescription("share of the backfill's key range done, 0 to 1")); err != nil {
		return nil, err
	}
	if r.inst.eta, err = meter.Float64Gauge("baton.migrate.backfill.eta", metric.WithUnit("s"), metric.WithDescription("estimated time left in the backfill at this run's rate (0 when done or unknown)")); err != nil {
		return nil, err
	}
	return r, nil
}

// Dialect returns the dialect in use.
func (r *Runner) Dialect() Dialect { return r.d }

// Migration returns a copy of the migration.
func (r *Runner) Migration() Migration { return r.m }

// Phase returns the recorded phase of the migration (PhaseNone before Start).
func (r *Runner) Phase(ctx context.Context) (Phase, error) {
	if err := r.ensureState(ctx); err != nil {
		return PhaseNone, err
	}
	return readPhase(ctx, r.db, r.d, r.t, r.m.Name)
}

func (r *Runner) ensureState(ctx context.Context) error {
	if r.stateOK.Load() {
		return nil
	}
	if err := ensureState(ctx, r.db, r.d, r.t); err != nil {
		return err
	}
	r.stateOK.Store(true)
	return nil
}

// step runs one phase transition under the runner lock: from a phase in
// from, record during, run fn, record after. A phase in done means the
// step already happened: nil, nothing runs.
func (r *Runner) step(ctx context.Context, action string, from, done []Phase, during, after Phase, fn func(context.Context) error) (err error) {
	return r.guardedStep(ctx, action, from, done, nil, during, after, fn)
}

// guardedStep is step with a guard that may refuse the transition before
// anything is recorded, so that a refusal leaves the phase unchanged.
func (r *Runner) guardedStep(ctx context.Context, action string, from, done []Phase, guard func(context.Context, Phase) error, during, after Phase, fn func(context.Context) error) (err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, span := r.tracer.Start(ctx, "migrate."+action, trace.WithAttributes(
		attribute.String("migration", r.m.Name), attribute.String("dialect", r.d.String())))
	defer func() {
		if err != nil {
			span.RecordError(err)
		}
		span.End()
	}()
	if err := r.ensureState(ctx); err != nil {
		return err
	}
	l, err := r.acquireLock(ctx)
	if err != nil {
		return err
	}
	defer l.release()
	if l.lost != nil {
		// A lost lease cancels the work with a cause, so that the caller
		// sees ErrLocked rather than a context.Canceled it did not ask for.
		leaseCtx, cancel := context.WithCancelCause(ctx)
		ctx = leaseCtx
		defer cancel(nil)
		go func() { // owner: this call; exits when ctx ends (cancel above)
			select {
			case <-l.lost:
				cancel(fmt.Errorf("%w: lease lost during %s of %q: the lease row %q in %s was taken over (renewals failed for LeaseTTL, or another runner broke it); call %s again",
					ErrLocked, action, r.m.Name, l.key, r.t.locks, action))
				r.log.ErrorContext(ctx, "migrate: runner lease lost", "migration", r.m.Name, "action", action)
			case <-ctx.Done():
			}
		}()
		defer func() {
			if err != nil && errors.Is(context.Cause(leaseCtx), ErrLocked) {
				err = context.Cause(leaseCtx)
			}
		}()
	}
	cur, err := readPhase(ctx, r.db, r.d, r.t, r.m.Name)
	if err != nil {
		return err
	}
	if slices.Contains(done, cur) {
		return nil
	}
	if !slices.Contains(from, cur) {
		return &PhaseError{Migration: r.m.Name, Action: action, Current: cur, Want: from}
	}
	if guard != nil {
		if err := guard(ctx, cur); err != nil {
			return err
		}
	}
	if during != "" && during != cur {
		if err := r.setPhase(ctx, during); err != nil {
			return err
		}
	}
	if err := fn(ctx); err != nil {
		return err
	}
	return r.setPhase(ctx, after)
}

// Start runs the expand phase: it creates tables, adds columns, builds
// indexes without blocking writes, and installs the dual-write triggers of
// every Transform. Allowed before anything ran, after a crashed Start, and
// after a Rollback.
//
// Before anything runs, the operations Start runs are linted as
// Options.LintMode says (by default findings are logged).
func (r *Runner) Start(ctx context.Context) error {
	return r.guardedStep(ctx, "Start",
		[]Phase{PhaseNone, PhaseExpanding, PhaseRolledBack},
		[]Phase{PhaseExpanded, PhaseBackfilling, PhaseBackfilled, PhaseReadNew, PhaseCompleting, PhaseComplete},
		func(ctx context.Context, _ Phase) error { return r.lintGuard(ctx, "Start", false) },
		PhaseExpanding, PhaseExpanded, r.expand)
}

// lintGuard lints the operations of one side of the migration (contract:
// those Complete runs; else those Start runs) as Options.LintMode says.
func (r *Runner) lintGuard(ctx context.Context, action string, contract bool) error {
	if r.opts.LintMode == LintOff {
		return nil
	}
	var refuse []Finding
	for _, f := range Lint(&r.m, r.d) {
		raw, isRaw := r.m.Operations[f.Operation].(RawSQL)
		if (isRaw && raw.Contract) != contract {
			continue
		}
		if r.opts.LintMode == LintRefuse && f.Severity == SeverityError {
			refuse = append(refuse, f)
			continue
		}
		r.log.WarnContext(ctx, "migrate: lint finding", "migration", r.m.Name, "action", action,
			"operation", f.Operation, "line", f.Line, "rule", f.Name, "severity", f.Severity.String(),
			"statement", oneLine(f.Statement), "why", f.Explanation, "alternative", f.Alternative)
	}
	if len(refuse) > 0 {
		return &LintError{Migration: r.m.Name, Action: action, Findings: refuse}
	}
	return nil
}

// Backfill fills the new columns of the rows that existed at its start
// (later rows are kept in sync by the triggers), in keyset batches that
// commit their checkpoint with them, and validates NOT VALID constraints.
// A cancelled or crashed Backfill resumes from its last checkpoint.
func (r *Runner) Backfill(ctx context.Context) error {
	return r.guardedStep(ctx, "Backfill",
		[]Phase{PhaseExpanded, PhaseBackfilling},
		[]Phase{PhaseBackfilled, PhaseReadNew, PhaseCompleting, PhaseComplete},
		r.appSyncGuard, PhaseBackfilling, PhaseBackfilled, r.backfillAll)
}

// SwitchReads records that applications must read the new columns
// (Phase.ReadNew becomes true). Writes stay dual until Complete.
func (r *Runner) SwitchReads(ctx context.Context) error {
	return r.step(ctx, "SwitchReads",
		[]Phase{PhaseBackfilled},
		[]Phase{PhaseReadNew, PhaseCompleting, PhaseComplete},
		"", PhaseReadNew, func(context.Context) error { return nil })
}

// Complete runs the contract phase: drops the dual-write triggers and the
// old columns and tables, and finishes SetNotNull. It refuses, with an
// *OldVersionsError, while an instance registered with a version older than
// Migration.Version heartbeats; ForceComplete skips that check. Contract
// RawSQL is linted first as Options.LintMode says.
func (r *Runner) Complete(ctx context.Context) error {
	return r.complete(ctx, false)
}

// ForceComplete is Complete without the instance-registry check, for when
// the operator knows the registry is wrong (for example instances that
// never registered are known to be gone).
func (r *Runner) ForceComplete(ctx context.Context) error {
	return r.complete(ctx, true)
}

func (r *Runner) complete(ctx context.Context, force bool) error {
	guard := func(ctx context.Context, _ Phase) error {
		if !force {
			if err := r.checkInstances(ctx); err != nil {
				return err
			}
		}
		return r.lintGuard(ctx, "Complete", true)
	}
	return r.guardedStep(ctx, "Complete",
		[]Phase{PhaseReadNew, PhaseCompleting},
		[]Phase{PhaseComplete},
		guard, PhaseCompleting, PhaseComplete, r.contract)
}

// Rollback undoes the expand phase (drops triggers, new columns, new
// tables and indexes, NOT VALID constraints) and forgets the backfill
// checkpoints. Allowed in any phase before Complete; applications must read
// the old columns again (Phase.ReadNew is false from its first step).
//
// The new version must be gone before the new columns disappear: Rollback
// refuses, with a *NewVersionsError and the phase unchanged, while an
// instance registered (Register) with Migration.Version or a newer version
// heartbeats. Every phase Rollback acts on is one where such an instance may
// use the new columns: they exist (or partly exist) from Start on, and new
// code writes them whatever the phase. Without Migration.Version the runner
// cannot tell new instances from old ones and does not check.
// ForceRollback skips the check.
func (r *Runner) Rollback(ctx context.Context) error {
	return r.rollbackStep(ctx, false)
}

// ForceRollback is Rollback without the instance-registry check, for when
// the operator knows the registry is wrong or accepts that still-running
// new-version instances fail on the dropped columns.
func (r *Runner) ForceRollback(ctx context.Context) error {
	return r.rollbackStep(ctx, true)
}

func (r *Runner) rollbackStep(ctx context.Context, force bool) error {
	var guard func(context.Context, Phase) error
	if !force {
		guard = r.checkNewInstances
	}
	return r.guardedStep(ctx, "Rollback",
		[]Phase{PhaseExpanding, PhaseExpanded, PhaseBackfilling, PhaseBackfilled, PhaseReadNew, PhaseRollingBack},
		[]Phase{PhaseRolledBack, PhaseNone},
		guard, PhaseRollingBack, PhaseRolledBack, r.rollback)
}

// Run drives the migration end to end: Start, Backfill, SwitchReads,
// Complete. Use the single steps when applications must be redeployed
// between them.
func (r *Runner) Run(ctx context.Context) error {
	for _, f := range []func(context.Context) error{r.Start, r.Backfill, r.SwitchReads, r.Complete} {
		if err := f(ctx); err != nil {
			return err
		}
	}
	return nil
}

// asTransform turns RenameColumn and ChangeType into the Transform they
// stand for. With types false the column types are not looked up (enough
// for Complete and Rollback, which only drop).
func (r *Runner) asTransform(ctx context.Context, op Operation, types bool) (Transform, bool, error) {
	q := r.d.quote
	oldType := func(table, col string) (string, error) {
		if !types {
			return "", nil
		}
		cols, err := r.d.columns(ctx, r.db, table)
		if err != nil {
			return "", err
		}
		for _, c := range cols {
			if c.Name == col || (r.d != PostgreSQL && strings.EqualFold(c.Name, col)) {
				return c.Type, nil
			}
		}
		return "", fmt.Errorf("%w: migration %q: column %q of table %q does not exist", ErrInvalid, r.m.Name, col, table)
	}
	switch o := op.(type) {
	case Transform:
		return o, true, nil
	case RenameColumn:
		typ := o.Type
		if typ == "" {
			var err error
			if typ, err = oldType(o.Table, o.From); err != nil {
				return Transform{}, false, err
			}
		}
		return Transform{
			Table: o.Table,
			Add:   []Column{{Name: o.To, Type: typ}},
			Up:    map[string]Expr{o.To: {SQL: q(o.From)}},
			Down:  map[string]Expr{o.From: {SQL: q(o.To)}},
			Drop:  []string{o.From},
		}, true, nil
	case ChangeType:
		up, down := o.Up, o.Down
		if up.For(r.d) == "" {
			up = Expr{SQL: "CAST(" + q(o.Column) + " AS " + o.Type + ")"}
		}
		if down.For(r.d) == "" && types {
			typ, err := oldType(o.Table, o.Column)
			if err != nil {
				return Transform{}, false, err
			}
			down = Expr{SQL: "CAST(" + q(o.To) + " AS " + typ + ")"}
		}
		return Transform{
			Table: o.Table,
			Add:   []Column{{Name: o.To, Type: o.Type}},
			Up:    map[string]Expr{o.To: up},
			Down:  map[string]Expr{o.Column: down},
			Drop:  []string{o.Column},
		}, true, nil
	}
	return Transform{}, false, nil
}

func (r *Runner) hasColumn(ctx context.Context, table, col string) (bool, error) {
	cols, err := r.d.columns(ctx, r.db, table)
	if err != nil {
		return false, err
	}
	for _, c := range cols {
		if c.Name == col || (r.d != PostgreSQL && strings.EqualFold(c.Name, col)) {
			return true, nil
		}
	}
	return false, nil
}

func (r *Runner) columnDef(c Column) string {
	s := r.d.quote(c.Name) + " " + c.Type
	if c.NotNull {
		s += " NOT NULL"
	}
	if c.Default != "" {
		s += " DEFAULT " + c.Default
	}
	return s
}

// mysqlAlter runs an ALTER TABLE on MySQL with ALGORITHM=INSTANT, falling
// back to ALGORITHM=INPLACE, LOCK=NONE when the server cannot do it
// instantly; neither blocks concurrent writes for the table copy.
func (r *Runner) mysqlAlter(ctx context.Context, table, clause string) error {
	base := "ALTER TABLE " + r.d.quote(table) + " " + clause
	err := r.execDDL(ctx, base+", ALGORITHM=INSTANT")
	if err == nil || ctx.Err() != nil {
		return err
	}
	var de *DDLError
	if errors.As(err, &de) && strings.Contains(strings.ToUpper(de.Err.Error()), "ALGORITHM") {
		return r.execDDL(ctx, base+", ALGORITHM=INPLACE, LOCK=NONE")
	}
	return err
}

func (r *Runner) addColumn(ctx context.Context, table string, c Column) error {
	ok, err := r.hasColumn(ctx, table, c.Name)
	if err != nil || ok {
		return err
	}
	if r.d == MySQL {
		return r.mysqlAlter(ctx, table, "ADD COLUMN "+r.columnDef(c))
	}
	return r.execDDL(ctx, "ALTER TABLE "+r.d.quote(table)+" ADD COLUMN "+r.columnDef(c))
}

func (r *Runner) dropColumn(ctx context.Context, table, col string) error {
	if ok, err := r.d.tableExists(ctx, r.db, table); err != nil || !ok {
		return err
	}
	ok, err := r.hasColumn(ctx, table, col)
	if err != nil || !ok {
		return err
	}
	if r.d == MySQL {
		return r.mysqlAlter(ctx, table, "DROP COLUMN "+r.d.quote(col))
	}
	return r.execDDL(ctx, "ALTER TABLE "+r.d.quote(table)+" DROP COLUMN "+r.d.quote(col))
}

func (r *Runner) quoteList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = r.d.quote(c)
	}
	return strings.Join(q, ", ")
}

// checkName is the name of the NOT VALID check constraint SetNotNull uses.
func (r *Runner) checkName(i int) string { return fmt.Sprintf("baton_nn_%s_%d", r.m.Name, i) }

func (r *Runner) expand(ctx context.Context) error {
	q := r.d.quote
	for i, op := range r.m.Operations {
		if t, ok, err := r.asTransform(ctx, op, true); err != nil {
			return err
		} else if ok {
			if err := r.expandTransform(ctx, i, t); err != nil {
				return err
			}
			continue
		}
		switch o := op.(type) {
		case CreateTable:
			defs := make([]string, len(o.Columns))
			for j, c := range o.Columns {
				defs[j] = r.columnDef(c)
				if c.PrimaryKey {
					defs[j] += " PRIMARY KEY"
					if r.d == MySQL && strings.Contains(strings.ToLower(c.Type), "int") {
						defs[j] += " AUTO_INCREMENT"
					}
				}
			}
			if err := r.execDDL(ctx, "CREATE TABLE IF NOT EXISTS "+q(o.Table)+" ("+strings.Join(defs, ", ")+")"); err != nil {
				return err
			}
		case AddColumn:
			if err := r.addColumn(ctx, o.Table, o.Column); err != nil {
				return err
			}
		case CreateIndex:
			if err := r.createIndex(ctx, o); err != nil {
				return err
			}
		case SetNotNull:
			if r.d == PostgreSQL {
				if err := r.addConstraintOnce(ctx, o.Table, r.checkName(i),
					"CHECK ("+q(o.Column)+" IS NOT NULL) NOT VALID"); err != nil {
					return err
				}
			}
		case AddForeignKey:
			def := "FOREIGN KEY (" + r.quoteList(o.Columns) + ") REFERENCES " + q(o.RefTable) + " (" + r.quoteList(o.RefColumns) + ")"
			if r.d == PostgreSQL {
				if err := r.addConstraintOnce(ctx, o.Table, o.Name, def+" NOT VALID"); err != nil {
					return err
				}
			} else if err := r.mysqlAddFK(ctx, o, def); err != nil {
				return err
			}
		case RawSQL:
			if !o.Contract {
				if err := r.execRaw(ctx, o.Up); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (r *Runner) execRaw(ctx context.Context, text string) error {
	for _, s := range splitStatements(r.d, text) {
		if err := r.execDDL(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

func (r *Runner) addConstraintOnce(ctx context.Context, table, name, def string) error {
	ok, err := r.d.constraintExists(ctx, r.db, table, name)
	if err != nil || ok {
		return err
	}
	return r.execDDL(ctx, "ALTER TABLE "+r.d.quote(table)+" ADD CONSTRAINT "+r.d.quote(name)+" "+def)
}

// mysqlAddFK adds a foreign key in place: with foreign_key_checks off
// MySQL/MariaDB add it without copying the table or checking existing
// rows, which Backfill then checks (the NOT VALID ... VALIDATE of
// PostgreSQL).
func (r *Runner) mysqlAddFK(ctx context.Context, o AddForeignKey, def string) error {
	ok, err := r.d.constraintExists(ctx, r.db, o.Table, o.Name)
	if err != nil || ok {
		return err
	}
	stmt := "ALTER TABLE " + r.d.quote(o.Table) + " ADD CONSTRAINT " + r.d.quote(o.Name) + " " + def + ", ALGORITHM=INPLACE, LOCK=NONE"
	return r.withDDLConn(ctx, stmt, func(ctx context.Context, c *sql.Conn) error {
		if _, err := c.ExecContext(ctx, "SET SESSION foreign_key_checks = 0"); err != nil {
			return err
		}
		_, err := c.ExecContext(ctx, stmt)
		if _, rerr := c.ExecContext(context.WithoutCancel(ctx), "SET SESSION foreign_key_checks = 1"); rerr != nil && err == nil {
			err = rerr
		}
		return err
	})
}

func (r *Runner) createIndex(ctx context.Context, o CreateIndex) error {
	q := r.d.quote
	uniq := ""
	if o.Unique {
		uniq = "UNIQUE "
	}
	switch r.d {
	case PostgreSQL:
		// A failed CONCURRENTLY build leaves an INVALID index behind; drop it
		// before each attempt so that IF NOT EXISTS does not keep it.
		return r.withDDLConn(ctx, "CREATE "+uniq+"INDEX CONCURRENTLY "+q(o.Name), func(ctx context.Context, c *sql.Conn) error {
			var invalid bool
			err := c.QueryRowContext(ctx, `SELECT NOT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)`, q(o.Name)).Scan(&invalid)
			if err == nil && invalid {
				if _, err := c.ExecContext(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+q(o.Name)); err != nil {
					return err
				}
			}
			_, err = c.ExecContext(ctx, "CREATE "+uniq+"INDEX CONCURRENTLY IF NOT EXISTS "+q(o.Name)+" ON "+q(o.Table)+" ("+r.quoteList(o.Columns)+")")
			return err
		})
	case MySQL:
		ok, err := r.d.indexExists(ctx, r.db, o.Table, o.Name)
		if err != nil || ok {
			return err
		}
		return r.execDDL(ctx, "CREATE "+uniq+"INDEX "+q(o.Name)+" ON "+q(o.Table)+" ("+r.quoteList(o.Columns)+") ALGORITHM=INPLACE LOCK=NONE")
	default:
		return r.execDDL(ctx, "CREATE "+uniq+"INDEX IF NOT EXISTS "+q(o.Name)+" ON "+q(o.Table)+" ("+r.quoteList(o.Columns)+")")
	}
}

func (r *Runner) dropIndex(ctx context.Context, o CreateIndex) error {
	q := r.d.quote
	switch r.d {
	case PostgreSQL:
		return r.execDDL(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+q(o.Name))
	case MySQL:
		ok, err := r.d.indexExists(ctx, r.db, o.Table, o.Name)
		if err != nil || !ok {
			return err
		}
		return r.execDDL(ctx, "ALTER TABLE "+q(o.Table)+" DROP INDEX "+q(o.Name)+", ALGORITHM=INPLACE, LOCK=NONE")
	default:
		return r.execDDL(ctx, "DROP INDEX IF EXISTS "+q(o.Name))
	}
}

func (r *Runner) contract(ctx context.Context) error {
	q := r.d.quote
	for i, op := range r.m.Operations {
		if t, ok, err := r.asTransform(ctx, op, false); err != nil {
			return err
		} else if ok {
			if err := r.dropTriggers(ctx, i, t); err != nil {
				return err
			}
			for _, c := range t.Drop {
				if err := r.dropColumn(ctx, t.Table, c); err != nil {
					return err
				}
			}
			continue
		}
		switch o := op.(type) {
		case SetNotNull:
			if err := r.setNotNull(ctx, i, o); err != nil {
				return err
			}
		case DropColumn:
			if err := r.dropColumn(ctx, o.Table, o.Column); err != nil {
				return err
			}
		case DropTable:
			if err := r.execDDL(ctx, "DROP TABLE IF EXISTS "+q(o.Table)); err != nil {
				return err
			}
		case RawSQL:
			if o.Contract {
				if err := r.execRaw(ctx, o.Up); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func (r *Runner) setNotNull(ctx context.Context, i int, o SetNotNull) error {
	q := r.d.quote
	switch r.d {
	case PostgreSQL:
		// With a validated CHECK (col IS NOT NULL), SET NOT NULL skips the
		// table scan and holds its exclusive lock only briefly.
		if err := r.execDDL(ctx, "ALTER TABLE "+q(o.Table)+" ALTER COLUMN "+q(o.Column)+" SET NOT NULL"); err != nil {
			return err
		}
		return r.execDDL(ctx, "ALTER TABLE "+q(o.Table)+" DROP CONSTRAINT IF EXISTS "+q(r.checkName(i)))
	case MySQL:
		cols, err := r.d.columns(ctx, r.db, o.Table)
		if err != nil {
			return err
		}
		for _, c := range cols {
			if strings.EqualFold(c.Name, o.Column) {
				if c.NotNull {
					return nil
				}
				if !typeRe.MatchString(c.Type) {
					return fmt.Errorf("%w: column %q has catalog type %q that cannot be restated safely", ErrUnsupported, c.Name, c.Type)
				}
				return r.execDDL(ctx, "ALTER TABLE "+q(o.Table)+" MODIFY COLUMN "+q(c.Name)+" "+c.Type+" NOT NULL, ALGORITHM=INPLACE, LOCK=NONE")
			}
		}
		return fmt.Errorf("%w: column %q of table %q does not exist", ErrInvalid, o.Column, o.Table)
	}
	return fmt.Errorf("%w: SET NOT NULL", ErrUnsupported)
}

func (r *Runner) rollback(ctx context.Context) error {
	q := r.d.quote
	for i := len(r.m.Operations) - 1; i >= 0; i-- {
		op := r.m.Operations[i]
		if t, ok, err := r.asTransform(ctx, op, false); err != nil {
			return err
		} else if ok {
			if ok, err := r.d.tableExists(ctx, r.db, t.Table); err != nil {
				return err
			} else if !ok {
				continue
			}
			if err := r.dropTriggers(ctx, i, t); err != nil {
				return err
			}
			for _, c := range t.Add {
				if err := r.dropColumn(ctx, t.Table, c.Name); err != nil {
					return err
				}
			}
			continue
		}
		var err error
		switch o := op.(type) {
		case CreateTable:
			err = r.execDDL(ctx, "DROP TABLE IF EXISTS "+q(o.Table))
		case AddColumn:
			err = r.dropColumn(ctx, o.Table, o.Column.Name)
		case CreateIndex:
			err = r.dropIndex(ctx, o)
		case SetNotNull:
			if r.d == PostgreSQL {
				err = r.execDDL(ctx, "ALTER TABLE "+q(o.Table)+" DROP CONSTRAINT IF EXISTS "+q(r.checkName(i)))
			}
		case AddForeignKey:
			var ok bool
			if ok, err = r.d.constraintExists(ctx, r.db, o.Table, o.Name); err == nil && ok {
				if r.d == PostgreSQL {
					err = r.execDDL(ctx, "ALTER TABLE "+q(o.Table)+" DROP CONSTRAINT IF EXISTS "+q(o.Name))
				} else {
					err = r.execDDL(ctx, "ALTER TABLE "+q(o.Table)+" DROP FOREIGN KEY "+q(o.Name))
				}
			}
		case RawSQL:
			if !o.Contract && strings.TrimSpace(o.Down) != "" {
				err = r.execRaw(ctx, o.Down)
			}
		}
		if err != nil {
			return err
		}
	}
	_, err := r.db.ExecContext(ctx, r.d.rebind(`DELETE FROM `+r.t.checkpoints+` WHERE migration = ?`), r.m.Name)
	return err
}
