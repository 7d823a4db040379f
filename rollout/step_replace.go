package rollout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// Defaults of RollingOptions.
const (
	DefaultMaxUnavailable = 1
	DefaultHealthTimeout  = time.Minute
	DefaultHealthInterval = time.Second
)

// RollingOptions configure Rolling. The zero value replaces one instance
// at a time (MaxUnavailable 1, no surge).
type RollingOptions struct {
	// MaxUnavailable is how many instances may be down at once. Zero means
	// DefaultMaxUnavailable, unless MaxSurge > 0 (then zero is allowed: no
	// capacity is lost).
	MaxUnavailable int
	// MaxSurge is how many extra instances of the new version may run
	// above the set; it needs Surger. Each batch starts that many extras,
	// waits until they are healthy, replaces MaxUnavailable+MaxSurge old
	// instances, and stops the extras once the batch is healthy.
	MaxSurge int
	// Surger starts and stops the extras; nil is refused when MaxSurge > 0.
	Surger Surger
	// HealthTimeout bounds the health gate after each replacement. Zero
	// means DefaultHealthTimeout.
	HealthTimeout time.Duration
	// HealthInterval is the time between health checks. Zero means
	// DefaultHealthInterval.
	HealthInterval time.Duration
	// Analyzer, if set, runs after each batch as an Analyze step.
	Analyzer Analyzer
	// PauseBetween, if positive, adds a Pause step between batches.
	PauseBetween time.Duration
}

// Rolling builds the steps of a rolling update of targets from version
// previous to version: one Replace step per batch, health-gated, with the
// batch size that keeps at least len(targets)-MaxUnavailable instances
// serving. A failed batch rolls back by replacing its instances (and the
// earlier batches') with previous.
func Rolling(targets []Target, version, previous string, o RollingOptions) ([]Step, error) {
	if len(targets) == 0 {
		return nil, &PlanError{Step: -1, Reason: "rolling update of no targets"}
	}
	if o.MaxUnavailable < 0 || o.MaxSurge < 0 {
		return nil, &PlanError{Step: -1, Reason: "negative MaxUnavailable or MaxSurge"}
	}
	if o.MaxSurge > 0 && o.Surger == nil {
		return nil, &PlanError{Step: -1, Reason: "MaxSurge needs a Surger"}
	}
	if o.MaxUnavailable == 0 && o.MaxSurge == 0 {
		o.MaxUnavailable = DefaultMaxUnavailable
	}
	if o.HealthTimeout == 0 {
		o.HealthTimeout = DefaultHealthTimeout
	}
	if o.HealthInterval == 0 {
		o.HealthInterval = DefaultHealthInterval
	}
	size := o.MaxUnavailable + o.MaxSurge
	var steps []Step
	for b, start := 0, 0; start < len(targets); b, start = b+1, start+size {
		end := min(start+size, len(targets))
		if b > 0 && o.PauseBetween > 0 {
			steps = append(steps, Pause(o.PauseBetween).Named(fmt.Sprintf("rolling-%s-pause-%d", version, b)))
		}
		steps = append(steps, Step{Name: fmt.Sprintf("rolling-%s-batch-%d", version, b), act: &replaceAction{
			targets: targets[start:end], version: version, previous: previous, o: o,
			surge: min(o.MaxSurge, end-start),
		}})
		if o.Analyzer != nil {
			steps = append(steps, Analyze(o.Analyzer, AnalysisOptions{}).Named(fmt.Sprintf("rolling-%s-analysis-%d", version, b)))
		}
	}
	return steps, nil
}

type replaceAction struct {
	targets           []Target
	version, previous string
	o                 RollingOptions
	surge             int
}

func (a *replaceAction) kind() Kind          { return KindReplace }
func (a *replaceAction) defaultName() string { return "replace-" + a.version }
func (a *replaceAction) irreversible() bool  { return false }
func (a *replaceAction) describe() string {
	names := make([]string, len(a.targets))
	for i, t := range a.targets {
		names[i] = t.Name()
	}
	return fmt.Sprintf("replace %s with %s (surge %d)", strings.Join(names, ", "), a.version, a.surge)
}

func (a *replaceAction) validate() error {
	for i, t := range a.targets {
		if t == nil {
			return fmt.Errorf("nil target %d", i)
		}
	}
	if a.version == "" || a.previous == "" {
		return errors.New("empty version or previous version")
	}
	return nil
}

func (a *replaceAction) run(ctx context.Context, x *stepCtx) error {
	if err := x.checkpoint(ctx); err != nil {
		return err
	}
	var extras []Target
	defer func() {
		// Extras only cover the batch while it is replaced; they are
		// stopped whatever happened (a crash leaves them to the Surger).
		for _, e := range extras {
			_ = a.o.Surger.StopExtra(context.WithoutCancel(ctx), e)
		}
	}()
	for range a.surge {
		e, err := a.o.Surger.StartExtra(ctx, a.version)
		if err != nil {
			return fmt.Errorf("start extra instance of %s: %w", a.version, err)
		}
		extras = append(extras, e)
	}
	if err := a.healthGate(ctx, x, extras); err != nil {
		return err
	}
	if err := a.replaceAll(ctx, x, a.version); err != nil {
		return err
	}
	return x.decide(ctx, "%d instance(s) replaced with %s and healthy", len(a.targets), a.version)
}

func (a *replaceAction) replaceAll(ctx context.Context, x *stepCtx, version string) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, t := range a.targets {
		g.Go(func() error {
			if err := t.Replace(gctx, version); err != nil {
				return fmt.Errorf("replace %s with %s: %w", t.Name(), version, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return a.healthGate(ctx, x, a.targets)
}

func (a *replaceAction) healthGate(ctx context.Context, x *stepCtx, ts []Target) error {
	deadline := x.now().Add(a.o.HealthTimeout)
	for _, t := range ts {
		for {
			err := t.Healthy(ctx)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			if errors.Is(err, ErrProcessExited) {
				return err
			}
			if !x.now().Before(deadline) {
				return fmt.Errorf("%s not healthy after %s: %w", t.Name(), a.o.HealthTimeout, err)
			}
			select {
			case <-x.r.clock.After(a.o.HealthInterval):
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
	}
	return nil
}

func (a *replaceAction) undo(ctx context.Context, x *stepCtx) error {
	if err := a.replaceAll(ctx, x, a.previous); err != nil {
		return err
	}
	return x.decide(ctx, "%d instance(s) back on %s", len(a.targets), a.previous)
}
