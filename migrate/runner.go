package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
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
	im   dialect
	t    tables
	log  *slog.Logger

	tracer trace.Tracer
	inst   instruments

	mu      sync.Mutex // serialises phase calls within this process
	stateOK atomic.Bool
	// lock is the runner lock while a phase call holds it (under mu).
	lock *heldLock
}

type instruments struct {
	ddlRetries    metric.Int64Counter
	rows          metric.Int64Counter
	batchDuration metric.Float64Histogram
	progress      metric.Float64Gauge
	eta           metric.Float64Gauge
}

// New returns a runner for migration m on db. It validates m for the
// dialect and does not touch the database; what needs the live schema
// (keys, constraints the new columns must carry) is checked by Check,
// which Start runs before its first DDL statement.
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
	if !d.known() {
		return nil, fmt.Errorf("%w: unknown dialect %q (want postgres, mysql or sqlite)", ErrInvalid, string(d))
	}
	if !nameRe.MatchString(opts.StateTablePrefix) {
		return nil, fmt.Errorf("%w: StateTablePrefix %q: want letters, digits and '_'", ErrInvalid, opts.StateTablePrefix)
	}
	if err := m.Validate(d); err != nil {
		return nil, err
	}
	r := &Runner{db: db, m: *m, opts: opts, d: d, im: d.impl(), t: newTables(d, opts.StateTablePrefix), log: opts.Logger}
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
	if err := r.inst.init(mp.Meter("github.com/batonhq/baton/migrate")); err != nil {
		return nil, err
	}
	return r, nil
}

func (in *instruments) init(meter metric.Meter) error {
	var err error
	if in.ddlRetries, err = meter.Int64Counter("baton.migrate.ddl.retries", metric.WithDescription("DDL statements retried after a lock timeout")); err != nil {
		return err
	}
	if in.rows, err = meter.Int64Counter("baton.migrate.backfill.rows", metric.WithDescription("rows visited by the backfill")); err != nil {
		return err
	}
	if in.batchDuration, err = meter.Float64Histogram("baton.migrate.backfill.batch.duration", metric.WithUnit("s"), metric.WithDescription("duration of one backfill batch transaction")); err != nil {
		return err
	}
	// Synchronous gauges rather than observable ones: the value is set
	// where it is known (after each batch) and the SDK keeps the last one,
	// so the final 1 and 0 stay visible after Backfill returns, with no
	// callback registration tying the Runner to the MeterProvider.
	if in.progress, err = meter.Float64Gauge("baton.migrate.backfill.progress", metric.WithUnit("1"), metric.WithDescription("share of the backfill done, 0 to 1")); err != nil {
		return err
	}
	in.eta, err = meter.Float64Gauge("baton.migrate.backfill.eta", metric.WithUnit("s"), metric.WithDescription("estimated time left in the backfill at this run's rate (0 when done or unknown)"))
	return err
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

// step is one call of a phase method: its row of transitions, a guard
// that may refuse before anything is recorded (so that a refusal leaves
// the phase unchanged), and the work.
type step struct {
	action string
	guard  func(ctx context.Context, cur Phase) error
	work   func(ctx context.Context) error
}

// run runs s under the runner lock: from a phase the transition allows,
// record its during phase, do the work, record its after phase. A lost
// runner lock cancels the work with a cause, so that the caller sees
// ErrLocked rather than a context.Canceled it did not ask for.
func (r *Runner) run(ctx context.Context, s step) (err error) {
	tr := transitions[s.action]
	r.mu.Lock()
	defer r.mu.Unlock()
	ctx, span := r.tracer.Start(ctx, "migrate."+s.action, trace.WithAttributes(
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
	r.lock = l
	defer func() {
		r.lock = nil
		l.release()
	}()
	lockCtx, cancel := context.WithCancelCause(ctx)
	ctx = lockCtx
	watched := make(chan struct{})
	defer func() { cancel(nil); <-watched }()
	go func() { // owner: this call, which waits for it after cancelling ctx
		defer close(watched)
		select {
		case <-l.lost:
			cancel(fmt.Errorf("%w: lease lost during %s of %q: %s; call %s again",
				ErrLocked, s.action, r.m.Name, l.why, s.action))
			r.log.ErrorContext(ctx, "migrate: runner lease lost", "migration", r.m.Name, "action", s.action, "why", l.why)
		case <-ctx.Done():
		}
	}()
	defer func() {
		if err != nil && errors.Is(context.Cause(lockCtx), ErrLocked) {
			err = context.Cause(lockCtx)
		}
	}()
	cur, err := readPhase(ctx, r.db, r.d, r.t, r.m.Name)
	if err != nil {
		return err
	}
	if slices.Contains(tr.done, cur) {
		return nil
	}
	if !slices.Contains(tr.from, cur) {
		return &PhaseError{Migration: r.m.Name, Action: s.action, Current: cur, Want: tr.from}
	}
	if s.guard != nil {
		if err := s.guard(ctx, cur); err != nil {
			return err
		}
	}
	if tr.during != "" && tr.during != cur {
		if err := r.setPhase(ctx, tr.during); err != nil {
			return err
		}
	}
	if err := s.work(ctx); err != nil {
		return err
	}
	return r.setPhase(ctx, tr.after)
}

// Start runs the expand phase: it creates tables, adds columns, builds
// indexes without blocking writes, and installs the dual-write triggers of
// every Transform. Allowed before anything ran, after a crashed Start, and
// after a Rollback.
//
// Before any DDL statement it runs Check, and lints the operations it runs
// as Options.LintMode says (by default findings are logged).
func (r *Runner) Start(ctx context.Context) error {
	return r.run(ctx, step{action: "Start", work: r.expand, guard: func(ctx context.Context, _ Phase) error {
		if err := r.lintGuard(ctx, "Start", false); err != nil {
			return err
		}
		_, err := r.prepare(ctx)
		return err
	}})
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
// (later rows are kept in sync by the triggers), one keyset pass per table
// in batches that commit their checkpoint with them, then validates what
// the new columns must satisfy (NOT NULL, UNIQUE, foreign keys). A
// cancelled or crashed Backfill resumes from its last checkpoint.
func (r *Runner) Backfill(ctx context.Context) error {
	return r.run(ctx, step{action: "Backfill", guard: r.appSyncGuard, work: r.backfillAll})
}

// SwitchReads records that applications must read the new columns
// (Phase.ReadNew becomes true). Writes stay dual until Complete.
func (r *Runner) SwitchReads(ctx context.Context) error {
	return r.run(ctx, step{action: "SwitchReads", work: func(context.Context) error { return nil }})
}

// Complete runs the contract phase: drops the dual-write triggers and the
// old columns and tables, gives the new columns the constraints they
// carry, and finishes SetNotNull. It refuses, with an *OldVersionsError,
// while an instance registered with a version older than Migration.Version
// heartbeats, and first waits (at most Options.CatchUpTimeout) until every
// live instance that reports the phases it acts on has acted on read_new
// (see Instance.Observe), failing with a *LaggingError otherwise.
// ForceComplete skips both checks. Contract RawSQL is linted first as
// Options.LintMode says.
func (r *Runner) Complete(ctx context.Context) error {
	return r.complete(ctx, false)
}

// ForceComplete is Complete without the instance-registry checks, for when
// the operator knows the registry is wrong (for example instances that
// never registered are known to be gone).
func (r *Runner) ForceComplete(ctx context.Context) error {
	return r.complete(ctx, true)
}

func (r *Runner) complete(ctx context.Context, force bool) error {
	return r.run(ctx, step{action: "Complete", work: r.contract, guard: func(ctx context.Context, _ Phase) error {
		if !force {
			if err := r.checkInstances(ctx); err != nil {
				return err
			}
			if err := r.awaitCaughtUp(ctx); err != nil {
				return err
			}
		}
		return r.lintGuard(ctx, "Complete", true)
	}})
}

// Rollback undoes the expand phase (drops triggers, new columns, new
// tables and indexes, NOT VALID constraints, and gives the old columns
// back the defaults Start moved into the triggers) and forgets the
// backfill checkpoints. Allowed in any phase before Complete; applications
// must read the old columns again (Phase.ReadNew is false from its first
// step).
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
	s := step{action: "Rollback", work: r.rollback}
	if !force {
		s.guard = r.checkNewInstances
	}
	return r.run(ctx, s)
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
