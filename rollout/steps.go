package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ---- set-weight ----

// SetWeight is a step that sends basisPoints (0..10000) of the traffic to
// the canary. Its rollback sets the weight to 0.
func SetWeight(w WeightSetter, basisPoints int) Step {
	return Step{act: &weightAction{w: w, bp: basisPoints}}
}

type weightAction struct {
	w  WeightSetter
	bp int
}

func (a *weightAction) kind() Kind         { return KindSetWeight }
func (a *weightAction) irreversible() bool { return false }
func (a *weightAction) describe() string {
	return fmt.Sprintf("set canary weight to %s", pct(a.bp))
}

func pct(bp int) string { return fmt.Sprintf("%d.%02d%%", bp/100, bp%100) }

func (a *weightAction) validate() error {
	if a.w == nil {
		return errors.New("nil WeightSetter")
	}
	if a.bp < 0 || a.bp > 10000 {
		return fmt.Errorf("weight %d basis points is outside 0..10000", a.bp)
	}
	return nil
}

func (a *weightAction) run(ctx context.Context, x *stepCtx) error {
	if err := a.w.SetWeight(ctx, a.bp); err != nil {
		return fmt.Errorf("set weight %s: %w", pct(a.bp), err)
	}
	return x.decide(ctx, "canary weight set to %s", pct(a.bp))
}

func (a *weightAction) undo(ctx context.Context, x *stepCtx) error {
	if err := a.w.SetWeight(ctx, 0); err != nil {
		return fmt.Errorf("set weight 0: %w", err)
	}
	return x.decide(ctx, "canary weight back to 0%%")
}

// ---- pause ----

// Pause is a step that waits for d, or until an operator promotes when d
// is 0. A resumed pause waits only for what was left. Nothing to roll back.
func Pause(d time.Duration) Step { return Step{act: &pauseAction{d: d}} }

// PauseUntilPromoted is Pause(0).
func PauseUntilPromoted() Step { return Pause(0) }

type pauseAction struct{ d time.Duration }

func (a *pauseAction) kind() Kind         { return KindPause }
func (a *pauseAction) irreversible() bool { return false }
func (a *pauseAction) describe() string {
	if a.d == 0 {
		return "pause until promoted"
	}
	return fmt.Sprintf("pause for %s", a.d)
}

func (a *pauseAction) validate() error {
	if a.d < 0 {
		return errors.New("negative pause")
	}
	return nil
}

func (a *pauseAction) run(ctx context.Context, x *stepCtx) error {
	var deadline time.Time
	if a.d > 0 {
		start, err := x.waitStart(ctx)
		if err != nil {
			return err
		}
		deadline = start.Add(a.d)
	}
	promoted, err := x.waitUntil(ctx, deadline)
	if err != nil {
		return err
	}
	if promoted {
		return x.decide(ctx, "pause ended by operator promote")
	}
	return x.decide(ctx, "pause of %s elapsed", a.d)
}

func (a *pauseAction) undo(ctx context.Context, x *stepCtx) error { return nil }

// ---- analyze ----

// Defaults of AnalysisOptions.
const (
	DefaultAnalysisCount    = 1
	DefaultAnalysisInterval = 30 * time.Second
)

// AnalysisOptions configure an Analyze step. The zero value takes one
// measurement and waits for an operator if it is inconclusive.
type AnalysisOptions struct {
	// Count is the number of measurements. Zero means DefaultAnalysisCount.
	Count int
	// Interval is the time before each measurement after the first. Zero
	// means DefaultAnalysisInterval.
	Interval time.Duration
	// MaxInconclusive is how many inconclusive measurements are tolerated.
	// Beyond it the step waits for an operator: promote passes it, abort
	// rolls back. Zero means none.
	MaxInconclusive int
	// FailInconclusive makes too many inconclusive measurements fail the
	// step instead of waiting for an operator.
	FailInconclusive bool
}

// Analyze is a step that judges the new version with a (a canary analysis
// or any check the user supplies). One Fail fails the step, which rolls
// the rollout back. Nothing to roll back.
func Analyze(a Analyzer, opts AnalysisOptions) Step {
	if opts.Count == 0 {
		opts.Count = DefaultAnalysisCount
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultAnalysisInterval
	}
	return Step{act: &analyzeAction{a: a, o: opts}}
}

type analyzeAction struct {
	a Analyzer
	o AnalysisOptions
}

func (a *analyzeAction) kind() Kind         { return KindAnalyze }
func (a *analyzeAction) irreversible() bool { return false }
func (a *analyzeAction) describe() string {
	return fmt.Sprintf("analysis: %d measurement(s) every %s", a.o.Count, a.o.Interval)
}

func (a *analyzeAction) validate() error {
	if a.a == nil {
		return errors.New("nil Analyzer")
	}
	if a.o.Count < 0 || a.o.Interval < 0 || a.o.MaxInconclusive < 0 {
		return errors.New("negative analysis count, interval or MaxInconclusive")
	}
	return nil
}

// Progress encodes measurements done (low 16 bits) and inconclusive ones
// (high bits), so that a resumed analysis keeps both.
func (a *analyzeAction) run(ctx context.Context, x *stepCtx) error {
	p := x.state().Progress
	done, inconclusive := p&0xffff, p>>16
	for done < a.o.Count {
		if done > 0 {
			start, err := x.waitStart(ctx)
			if err != nil {
				return err
			}
			if promoted, err := x.waitUntil(ctx, start.Add(a.o.Interval)); err != nil {
				return err
			} else if promoted {
				return x.decide(ctx, "analysis ended by operator promote")
			}
		}
		if err := x.checkpoint(ctx); err != nil {
			return err
		}
		v, reason, err := x.analyze(ctx, a.a, fmt.Sprintf("measurement %d/%d", done+1, a.o.Count))
		if err != nil {
			return err
		}
		if v == Fail {
			return &AnalysisError{Verdict: v, Reason: reason}
		}
		if v == Inconclusive {
			inconclusive++
		}
		done++
		if err := x.update(ctx, func(s *StepState) {
			s.Progress = done | inconclusive<<16
			s.WaitStartedAt = time.Time{}
		}); err != nil {
			return err
		}
	}
	if inconclusive <= a.o.MaxInconclusive {
		return x.decide(ctx, "analysis passed (%d measurement(s), %d inconclusive)", done, inconclusive)
	}
	if a.o.FailInconclusive {
		return &AnalysisError{Verdict: Inconclusive, Reason: fmt.Sprintf("%d of %d measurements inconclusive (%d tolerated)", inconclusive, done, a.o.MaxInconclusive)}
	}
	if err := x.decide(ctx, "%d of %d measurements inconclusive: waiting for an operator to promote or abort", inconclusive, done); err != nil {
		return err
	}
	if _, err := x.waitUntil(ctx, time.Time{}); err != nil {
		return err
	}
	return x.decide(ctx, "inconclusive analysis accepted by operator promote")
}

func (a *analyzeAction) undo(ctx context.Context, x *stepCtx) error { return nil }

// ---- ramp-flag ----

// Defaults of RampOptions.
const DefaultRampInterval = time.Minute

// RampOptions configure a RampFlag step. The zero value is invalid: give
// at least one percentage.
type RampOptions struct {
	// Percentages are the rollout percentages in order, each in 0..100.
	Percentages []float64
	// Interval is how long each percentage is held before its analysis.
	// Zero means DefaultRampInterval.
	Interval time.Duration
	// Analyzer, if set, judges each percentage; one Fail turns the flag off
	// (the step's rollback) and rolls the rollout back.
	Analyzer Analyzer
}

// RampFlag is a step that ramps flag key through opts.Percentages with
// analysis between them. A resumed ramp continues at the percentage it was
// at. Its rollback disables the flag.
func RampFlag(f FlagRamper, key string, opts RampOptions) Step {
	if opts.Interval == 0 {
		opts.Interval = DefaultRampInterval
	}
	return Step{act: &rampAction{f: f, key: key, o: opts}}
}

type rampAction struct {
	f   FlagRamper
	key string
	o   RampOptions
}

func (a *rampAction) kind() Kind         { return KindRampFlag }
func (a *rampAction) irreversible() bool { return false }
func (a *rampAction) describe() string {
	return fmt.Sprintf("ramp flag %q through %v%% every %s", a.key, a.o.Percentages, a.o.Interval)
}

func (a *rampAction) validate() error {
	if a.f == nil {
		return errors.New("nil FlagRamper")
	}
	if a.key == "" {
		return errors.New("empty flag key")
	}
	if len(a.o.Percentages) == 0 {
		return errors.New("no percentages")
	}
	for i, p := range a.o.Percentages {
		if !(p >= 0 && p <= 100) {
			return fmt.Errorf("percentage %d (%v) is outside 0..100", i, p)
		}
	}
	if a.o.Interval < 0 {
		return errors.New("negative interval")
	}
	return nil
}

func (a *rampAction) run(ctx context.Context, x *stepCtx) error {
	last := len(a.o.Percentages) - 1
	for k := x.state().Progress; k <= last; k++ {
		if err := x.checkpoint(ctx); err != nil {
			return err
		}
		if k < last && x.promoteFull() {
			if err := x.decide(ctx, "promote-full: jumping to %v%%", a.o.Percentages[last]); err != nil {
				return err
			}
			k = last
		}
		p := a.o.Percentages[k]
		if err := a.f.SetPercentage(ctx, a.key, p); err != nil {
			return fmt.Errorf("flag %q to %v%%: %w", a.key, p, err)
		}
		if err := x.decide(ctx, "flag %q at %v%%", a.key, p); err != nil {
			return err
		}
		if a.o.Analyzer != nil {
			start, err := x.waitStart(ctx)
			if err != nil {
				return err
			}
			promoted, err := x.waitUntil(ctx, start.Add(a.o.Interval))
			if err != nil {
				return err
			}
			if !promoted {
				v, reason, err := x.analyze(ctx, a.o.Analyzer, fmt.Sprintf("analysis at %v%%", p))
				if err != nil {
					return err
				}
				if v == Fail {
					return &AnalysisError{Verdict: v, Reason: reason}
				}
			}
		}
		if err := x.update(ctx, func(s *StepState) { s.Progress = k + 1; s.WaitStartedAt = time.Time{} }); err != nil {
			return err
		}
	}
	return nil
}

func (a *rampAction) undo(ctx context.Context, x *stepCtx) error {
	if err := a.f.Disable(ctx, a.key); err != nil {
		return fmt.Errorf("disable flag %q: %w", a.key, err)
	}
	return x.decide(ctx, "flag %q disabled", a.key)
}

// ---- migration ----

// MigrationPhase is a phase of an expand-contract migration. The zero
// value is invalid.
type MigrationPhase string

// Migration phases, in order.
const (
	MigrationStart       MigrationPhase = "start" // expand
	MigrationBackfill    MigrationPhase = "backfill"
	MigrationSwitchReads MigrationPhase = "switch-reads"
	MigrationComplete    MigrationPhase = "complete" // contract: irreversible
)

// Migration is a step that runs one phase of migration name. Complete is
// irreversible; the rollback of every other phase calls Rollback (which
// must be idempotent: it may be called once per rolled-back phase).
func Migration(m MigrationPhaser, name string, phase MigrationPhase) Step {
	return Step{act: &migrationAction{m: m, name: name, phase: phase}}
}

type migrationAction struct {
	m     MigrationPhaser
	name  string
	phase MigrationPhase
}

func (a *migrationAction) kind() Kind         { return KindMigration }
func (a *migrationAction) irreversible() bool { return a.phase == MigrationComplete }
func (a *migrationAction) describe() string {
	return fmt.Sprintf("migration %q: %s", a.name, a.phase)
}

func (a *migrationAction) validate() error {
	if a.m == nil {
		return errors.New("nil MigrationPhaser")
	}
	if a.name == "" {
		return errors.New("empty migration name")
	}
	switch a.phase {
	case MigrationStart, MigrationBackfill, MigrationSwitchReads, MigrationComplete:
		return nil
	}
	return fmt.Errorf("unknown migration phase %q", a.phase)
}

func (a *migrationAction) run(ctx context.Context, x *stepCtx) error {
	var err error
	switch a.phase {
	case MigrationStart:
		err = a.m.Start(ctx, a.name)
	case MigrationBackfill:
		err = a.m.Backfill(ctx, a.name)
	case MigrationSwitchReads:
		err = a.m.SwitchReads(ctx, a.name)
	case MigrationComplete:
		err = a.m.Complete(ctx, a.name)
	}
	if err != nil {
		return fmt.Errorf("migration %q %s: %w", a.name, a.phase, err)
	}
	return x.decide(ctx, "migration %q: %s done", a.name, a.phase)
}

func (a *migrationAction) undo(ctx context.Context, x *stepCtx) error {
	if err := a.m.Rollback(ctx, a.name); err != nil {
		return fmt.Errorf("migration %q rollback: %w", a.name, err)
	}
	return x.decide(ctx, "migration %q rolled back (undoing %s)", a.name, a.phase)
}

// ---- wait-old-gone ----

// DefaultPollInterval is how often WaitOldGone asks the registry.
const DefaultPollInterval = 5 * time.Second

// WaitOldGone is a step that waits until reg reports no live instance of
// a version other than current, polling every poll (zero means
// DefaultPollInterval). Registry errors are recorded and retried until the
// step's Timeout. Promote does not end it: contracting while old code runs
// is what it guards against. Nothing to roll back.
func WaitOldGone(reg InstanceRegistry, current string, poll time.Duration) Step {
	if poll == 0 {
		poll = DefaultPollInterval
	}
	return Step{act: &waitOldAction{reg: reg, current: current, poll: poll}}
}

type waitOldAction struct {
	reg     InstanceRegistry
	current string
	poll    time.Duration
}

func (a *waitOldAction) kind() Kind         { return KindWaitOldGone }
func (a *waitOldAction) irreversible() bool { return false }
func (a *waitOldAction) describe() string {
	return fmt.Sprintf("wait until no instance older than %s is alive", a.current)
}

func (a *waitOldAction) validate() error {
	if a.reg == nil {
		return errors.New("nil InstanceRegistry")
	}
	if a.current == "" {
		return errors.New("empty current version")
	}
	if a.poll < 0 {
		return errors.New("negative poll interval")
	}
	return nil
}

func (a *waitOldAction) run(ctx context.Context, x *stepCtx) error {
	last := -2
	for {
		n, err := a.reg.OldVersionsAlive(ctx, a.current)
		switch {
		case err != nil && ctx.Err() != nil:
			return context.Cause(ctx)
		case err != nil:
			if err := x.decide(ctx, "instance registry error, retrying: %v", err); err != nil {
				return err
			}
			last = -1
		case n == 0:
			return x.decide(ctx, "no instance of an older version is alive")
		case n != last:
			if err := x.decide(ctx, "%d instance(s) of older versions still alive: waiting", n); err != nil {
				return err
			}
			last = n
		}
		select {
		case <-x.r.clock.After(a.poll):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

func (a *waitOldAction) undo(ctx context.Context, x *stepCtx) error { return nil }
