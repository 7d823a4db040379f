package bind

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/rollout"
)

// CanaryWeights drives set-weight steps with a *canary.Splitter: SetWeight
// is Splitter.SetWeight, an atomic store the next request sees (it also
// clears a halt). The zero value (nil Splitter) fails every call.
//
// A Splitter's weight lives in memory: a process that restarts, or the new
// process of an upgrade, starts at canary.Options.Weight while the rollout
// says the set-weight step is done (it is not run again). The rollout
// keeps the weight with the release (rollout.Status.Weight); call
// Rollout.Restore with the CanaryWeights before serving (rollout.Driver
// does) to serve at it again.
type CanaryWeights struct {
	Splitter *canary.Splitter
}

// SetWeight sets the canary's share in basis points.
func (c CanaryWeights) SetWeight(ctx context.Context, weight uint32) error {
	if c.Splitter == nil {
		return errors.New("bind: CanaryWeights has no Splitter")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return c.Splitter.SetWeight(weight)
}

// CanaryAnalyzer judges the canary of a Splitter against its stable
// variant with a canary.Analyzer over the splitter's metrics at its
// current weight: canary's pass, fail and inconclusive become Pass, Fail
// and Inconclusive, and the analysis reason (which check failed, with its
// figures) becomes the decision's reason.
//
// Each analysis that runs a test spends one look of the analyzer's alpha
// budget. With Options.Looks zero, the budget is planned over the number
// of times the rollout's plan calls this analyzer: rollout.New counts them
// (rollout.LookPlanner), so nobody sizes Looks by hand.
//
// At weight 100% no request goes to stable, so there is nothing to
// compare with: the canary is then judged by Options.MaxErrorRate and
// MaxP99 alone (Pass when they are set and hold), and is Inconclusive
// when neither is set. Use a pointer; the zero value (nil Splitter) fails
// every call.
type CanaryAnalyzer struct {
	Splitter *canary.Splitter
	// Options configure the analysis (canary.NewAnalyzer).
	Options canary.AnalysisOptions

	mu    sync.Mutex
	a     *canary.Analyzer
	looks int // planned by the rollout, when Options.Looks is zero
}

// PlanLooks implements rollout.LookPlanner.
func (c *CanaryAnalyzer) PlanLooks(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.looks != n {
		c.looks, c.a = n, nil
	}
}

func (c *CanaryAnalyzer) analyzer() (*canary.Analyzer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.a != nil {
		return c.a, nil
	}
	o := c.Options
	if o.Looks == 0 {
		o.Looks = c.looks
	}
	a, err := canary.NewAnalyzer(o)
	if err != nil {
		return nil, err
	}
	c.a = a
	return a, nil
}

// Analyze runs one canary analysis.
func (c *CanaryAnalyzer) Analyze(ctx context.Context) (rollout.Verdict, string, error) {
	v, reason, _, err := c.AnalyzeMeasured(ctx)
	return v, reason, err
}

// AnalyzeMeasured implements rollout.MeasuredAnalyzer: one canary
// analysis, with the figures of both variants over the window compared,
// which the rollout records with the decision for its console's charts.
func (c *CanaryAnalyzer) AnalyzeMeasured(ctx context.Context) (rollout.Verdict, string, *rollout.Measurement, error) {
	if err := ctx.Err(); err != nil {
		return rollout.Inconclusive, "", nil, err
	}
	if c.Splitter == nil {
		return rollout.Inconclusive, "", nil, errors.New("bind: CanaryAnalyzer needs a Splitter")
	}
	a, err := c.analyzer()
	if err != nil {
		return rollout.Inconclusive, "", nil, fmt.Errorf("bind: canary analysis options: %w", err)
	}
	rep := a.Analyze(c.Splitter.Metrics().Snapshot())
	m := &rollout.Measurement{
		WindowStart: rep.WindowStart, WindowEnd: rep.WindowEnd, Weight: rep.Weight,
		Canary: figuresOf(rep.Canary), Stable: figuresOf(rep.Stable),
	}
	if c.Splitter.Weight() == canary.MaxWeight {
		v, reason := rep.Alone()
		return verdictOf(v), reason, m, nil
	}
	return verdictOf(rep.Verdict), rep.Reason, m, nil
}

func figuresOf(f canary.Figures) rollout.Figures {
	return rollout.Figures{
		Requests: f.Requests, Errors: f.Errors, ErrorRate: f.ErrorRate,
		P50Seconds: f.P50.Seconds(), P99Seconds: f.P99.Seconds(),
	}
}

func verdictOf(v canary.Verdict) rollout.Verdict {
	switch v {
	case canary.Pass:
		return rollout.Pass
	case canary.Fail:
		return rollout.Fail
	}
	return rollout.Inconclusive
}

var (
	_ rollout.WeightSetter     = CanaryWeights{}
	_ rollout.Analyzer         = (*CanaryAnalyzer)(nil)
	_ rollout.MeasuredAnalyzer = (*CanaryAnalyzer)(nil)
	_ rollout.LookPlanner      = (*CanaryAnalyzer)(nil)
)
