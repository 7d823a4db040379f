package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Defaults of AnalysisOptions and BakeOptions.
const (
	DefaultAnalysisCount    = 1
	DefaultAnalysisInterval = 30 * time.Second
	// DefaultMinConclusive is how many conclusive measurements an
	// analysis (or bake rounds a bake window) needs to pass: a
	// measurement that could not judge (no traffic, too few samples) is
	// no evidence that the new version is healthy.
	DefaultMinConclusive = 1
)

// AnalysisOptions configure an Analyze step. The zero value takes one
// measurement, which must be conclusive: an inconclusive one waits for an
// operator.
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
	// MinConclusive is how many measurements must be conclusive (Pass)
	// for the step to pass, whatever MaxInconclusive tolerates; with
	// fewer the step waits for an operator. Zero means
	// DefaultMinConclusive; it is capped at Count.
	MinConclusive int
	// FailInconclusive makes too many inconclusive measurements (or too
	// few conclusive ones) fail the step instead of waiting for an
	// operator.
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
	if opts.MinConclusive == 0 {
		opts.MinConclusive = DefaultMinConclusive
	}
	opts.MinConclusive = min(opts.MinConclusive, opts.Count)
	return Step{act: &analyzeAction{a: a, o: opts}}
}

type analyzeAction struct {
	a Analyzer
	o AnalysisOptions
}

func (a *analyzeAction) kind() Kind          { return KindAnalyze }
func (a *analyzeAction) defaultName() string { return "analyze" }
func (a *analyzeAction) irreversible() bool  { return false }
func (a *analyzeAction) describe() string {
	return fmt.Sprintf("analysis: %d measurement(s) every %s, at least %d conclusive", a.o.Count, a.o.Interval, a.o.MinConclusive)
}

func (a *analyzeAction) validate() error {
	if a.a == nil {
		return errors.New("nil Analyzer")
	}
	if a.o.Count < 0 || a.o.Interval < 0 || a.o.MaxInconclusive < 0 || a.o.MinConclusive < 0 {
		return errors.New("negative analysis count, interval, MaxInconclusive or MinConclusive")
	}
	if a.o.Count > 0xffff {
		return fmt.Errorf("analysis count %d is above %d", a.o.Count, 0xffff)
	}
	return nil
}

func (a *analyzeAction) analyzers(add func(Analyzer, int)) { add(a.a, a.o.Count) }

// Progress encodes measurements done (low 16 bits) and inconclusive ones
// (high bits), so that a resumed analysis keeps both.
func (a *analyzeAction) checkProgress(p int) error {
	done, inconclusive := p&0xffff, p>>16
	if done > a.o.Count || inconclusive > done {
		return fmt.Errorf("%d measurements done (%d inconclusive) of %d", done, inconclusive, a.o.Count)
	}
	return nil
}

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
		if err := x.update(ctx, func(_ *Status, s *StepState) {
			s.Progress = done | inconclusive<<16
			s.WaitStartedAt = time.Time{}
		}); err != nil {
			return err
		}
	}
	conclusive := done - inconclusive
	tally := fmt.Sprintf("%d of %d measurement(s) conclusive (at least %d required), %d inconclusive (%d tolerated)",
		conclusive, done, a.o.MinConclusive, inconclusive, a.o.MaxInconclusive)
	if inconclusive <= a.o.MaxInconclusive && conclusive >= a.o.MinConclusive {
		return x.decide(ctx, "analysis passed: %s", tally)
	}
	if a.o.FailInconclusive {
		return &AnalysisError{Verdict: Inconclusive, Reason: "analysis not conclusive: " + tally}
	}
	if err := x.decide(ctx, "analysis not conclusive: %s; waiting for an operator to promote or abort", tally); err != nil {
		return err
	}
	if _, err := x.waitUntil(ctx, time.Time{}); err != nil {
		return err
	}
	return x.decide(ctx, "inconclusive analysis accepted by operator promote")
}

func (a *analyzeAction) undo(ctx context.Context, x *stepCtx) error { return nil }
