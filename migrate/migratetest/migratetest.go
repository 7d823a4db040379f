// Package migratetest drives a migration through its four phases while
// simulated old- and new-version writers run, so that a user can test their
// own migration (and their application's phase handling) against a real
// database before production does it for them.
//
//	res, err := migratetest.Run(ctx, runner, migratetest.Scenario{
//		DB:  db,
//		Old: func(ctx context.Context, db *sql.DB, _ migrate.Phase) error { ... old code's write ... },
//		New: func(ctx context.Context, db *sql.DB, p migrate.Phase) error { ... new code, columns chosen by p ... },
//		Check: func(ctx context.Context, db *sql.DB) (int, error) { ... count rows where old and new disagree ... },
//	})
//	// want res.Errors == 0 && res.Inconsistent == 0
package migratetest

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/migrate"
)

// Defaults for the zero fields of Scenario.
const (
	DefaultWriters  = 2
	DefaultMaxOps   = 20000
	DefaultInterval = time.Millisecond
	DefaultAfterOps = 20
)

// Op is one application operation (a write or a read). The phase is the
// migration's current phase as the application would read it; old-version
// code ignores it.
type Op func(ctx context.Context, db *sql.DB, p migrate.Phase) error

// Scenario describes the simulated application. Zero fields mean defaults.
type Scenario struct {
	// DB is the database the writers use (required).
	DB *sql.DB
	// Old and New are the old and new versions' operations, called in a
	// loop by each writer (required). New must write only the new columns
	// once p.ReadNew() is true: Complete drops the old ones.
	Old, New Op
	// Check counts rows whose new columns disagree with the old ones; it is
	// called after Backfill, after SwitchReads and just before Complete
	// (once the old writers have stopped), while new writers run. Nil
	// skips the checks.
	Check func(ctx context.Context, db *sql.DB) (int, error)
	// OldWriters and NewWriters: goroutines per version; zero means
	// DefaultWriters.
	OldWriters, NewWriters int
	// MaxOps bounds each writer's operations; zero means DefaultMaxOps.
	MaxOps int
	// Interval paces each writer; zero means DefaultInterval.
	Interval time.Duration
	// AfterOps is how many operations the new writers run on the
	// contracted schema before Run returns; zero means DefaultAfterOps.
	AfterOps int
}

// Result reports what the writers saw.
type Result struct {
	// Ops is the number of operations run; Errors how many failed, and
	// FirstError the first failure.
	Ops, Errors int64
	FirstError  error
	// Inconsistent is the sum of Check's counts.
	Inconsistent int
}

// Run starts the old writers, calls Start, starts the new writers (the new
// version is deployed after expand), calls Backfill, SwitchReads, waits
// until every new writer has seen ReadNew, stops the old writers, and calls
// Complete. It returns when every writer has stopped. The error is a phase
// call's error or ctx.Err(); writer failures are in Result.
func Run(ctx context.Context, r *migrate.Runner, s Scenario) (res Result, err error) {
	if s.DB == nil || s.Old == nil || s.New == nil || r == nil {
		return Result{}, errors.New("migratetest: Scenario needs DB, Old and New, and a runner")
	}
	if s.OldWriters <= 0 {
		s.OldWriters = DefaultWriters
	}
	if s.NewWriters <= 0 {
		s.NewWriters = DefaultWriters
	}
	if s.MaxOps <= 0 {
		s.MaxOps = DefaultMaxOps
	}
	if s.Interval <= 0 {
		s.Interval = DefaultInterval
	}
	if s.AfterOps <= 0 {
		s.AfterOps = DefaultAfterOps
	}
	var ops, errs atomic.Int64
	var first atomic.Value
	var sawNew atomic.Int64
	var mu sync.Mutex
	phase := migrate.PhaseNone
	setPhase := func(p migrate.Phase) { mu.Lock(); phase = p; mu.Unlock() }
	getPhase := func() migrate.Phase { mu.Lock(); defer mu.Unlock(); return phase }

	writer := func(ctx context.Context, op Op, isNew bool) {
		tick := time.NewTicker(s.Interval)
		defer tick.Stop()
		acked := false
		for range s.MaxOps {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			p := getPhase()
			if isNew {
				// The application reads the phase from the database.
				var err error
				if p, err = r.Phase(ctx); err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
						first.CompareAndSwap(nil, fmt.Errorf("read phase: %w", err))
					}
					continue
				}
				if p.ReadNew() && !acked {
					acked = true
					sawNew.Add(1)
				}
			}
			if err := op(ctx, s.DB, p); err != nil && ctx.Err() == nil {
				errs.Add(1)
				first.CompareAndSwap(nil, err)
			}
			ops.Add(1)
		}
	}
	oldCtx, stopOld := context.WithCancel(ctx)
	newCtx, stopNew := context.WithCancel(ctx)
	var oldWG, newWG sync.WaitGroup
	defer func() {
		stopOld()
		stopNew()
		oldWG.Wait()
		newWG.Wait()
		res.Ops, res.Errors = ops.Load(), errs.Load()
		if e, ok := first.Load().(error); ok {
			res.FirstError = e
		}
	}()
	for range s.OldWriters {
		oldWG.Go(func() { writer(oldCtx, s.Old, false) })
	}
	check := func() error {
		if s.Check == nil {
			return nil
		}
		n, err := s.Check(ctx, s.DB)
		res.Inconsistent += n
		return err
	}
	step := func(name string, f func(context.Context) error) error {
		if err := f(ctx); err != nil {
			return fmt.Errorf("migratetest: %s: %w", name, err)
		}
		p, err := r.Phase(ctx)
		setPhase(p)
		return err
	}
	if err := step("Start", r.Start); err != nil {
		return res, err
	}
	for range s.NewWriters {
		newWG.Go(func() { writer(newCtx, s.New, true) })
	}
	if err := step("Backfill", r.Backfill); err != nil {
		return res, err
	}
	if err := check(); err != nil {
		return res, err
	}
	if err := step("SwitchReads", r.SwitchReads); err != nil {
		return res, err
	}
	// Wait (polling, bounded by ctx) until each new writer has seen the
	// switch, like a rollout waiting for a flag to propagate.
	if err := poll(ctx, s.Interval, func() bool { return sawNew.Load() >= int64(s.NewWriters) }); err != nil {
		return res, err
	}
	if err := check(); err != nil {
		return res, err
	}
	stopOld()
	oldWG.Wait()
	if err := check(); err != nil {
		return res, err
	}
	if err := step("Complete", r.Complete); err != nil {
		return res, err
	}
	before := ops.Load()
	if err := poll(ctx, s.Interval, func() bool { return ops.Load() >= before+int64(s.AfterOps) }); err != nil {
		return res, err
	}
	return res, nil
}

// poll checks done every interval until it holds or ctx ends.
func poll(ctx context.Context, interval time.Duration, done func() bool) error {
	for !done() {
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}
