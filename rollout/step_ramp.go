package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

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
	// (the step's rollback) and rolls the rollout back. An inconclusive
	// analysis holds the ramp at its percentage until an operator
	// promotes (or aborts), or fails the step with FailInconclusive: a
	// ramp moves on only on evidence.
	Analyzer Analyzer
	// FailInconclusive makes an inconclusive analysis fail the step
	// instead of waiting for an operator.
	FailInconclusive bool
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

func (a *rampAction) kind() Kind          { return KindRampFlag }
func (a *rampAction) defaultName() string { return "ramp-flag-" + a.key }
func (a *rampAction) irreversible() bool  { return false }
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

func (a *rampAction) analyzers(add func(Analyzer, int)) {
	if a.o.Analyzer != nil {
		add(a.o.Analyzer, len(a.o.Percentages))
	}
}

// Progress is the number of percentages done.
func (a *rampAction) checkProgress(p int) error {
	if p > len(a.o.Percentages) {
		return fmt.Errorf("%d percentages done of %d", p, len(a.o.Percentages))
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
		if err := a.f.SetPercent(ctx, a.key, p); err != nil {
			return fmt.Errorf("flag %q to %v%%: %w", a.key, p, err)
		}
		if err := x.record(ctx, Decision{Reason: fmt.Sprintf("flag %q at %v%%", a.key, p), Percent: &p}); err != nil {
			return err
		}
		if a.o.Analyzer != nil {
			if err := a.judge(ctx, x, p); err != nil {
				return err
			}
		}
		if err := x.update(ctx, func(_ *Status, s *StepState) { s.Progress = k + 1; s.WaitStartedAt = time.Time{} }); err != nil {
			return err
		}
	}
	return nil
}

// judge holds percentage p for the interval and analyses it.
func (a *rampAction) judge(ctx context.Context, x *stepCtx, p float64) error {
	start, err := x.waitStart(ctx)
	if err != nil {
		return err
	}
	promoted, err := x.waitUntil(ctx, start.Add(a.o.Interval))
	if err != nil || promoted {
		return err
	}
	v, reason, err := x.analyze(ctx, a.o.Analyzer, fmt.Sprintf("analysis at %v%%", p))
	switch {
	case err != nil:
		return err
	case v == Fail:
		return &AnalysisError{Verdict: v, Reason: reason}
	case v == Pass:
		return nil
	case a.o.FailInconclusive:
		return &AnalysisError{Verdict: v, Reason: fmt.Sprintf("analysis at %v%% not conclusive: %s", p, reason)}
	}
	if err := x.decide(ctx, "analysis at %v%% not conclusive: the ramp holds until an operator promotes or aborts", p); err != nil {
		return err
	}
	if _, err := x.waitUntil(ctx, time.Time{}); err != nil {
		return err
	}
	return x.decide(ctx, "inconclusive analysis at %v%% accepted by operator promote", p)
}

func (a *rampAction) undo(ctx context.Context, x *stepCtx) error {
	if err := a.f.Disable(ctx, a.key); err != nil {
		return fmt.Errorf("disable flag %q: %w", a.key, err)
	}
	off := 0.0
	return x.record(ctx, Decision{Reason: fmt.Sprintf("flag %q disabled", a.key), Percent: &off})
}
