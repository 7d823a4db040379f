package rollout

import (
	"context"
	"fmt"

	"github.com/batonhq/baton/canary"
)

// CanaryWeights drives set-weight steps with a *canary.Splitter: SetWeight
// is Splitter.SetWeight, an atomic store the next request sees (it also
// clears a halt). The zero value (nil Splitter) fails every call.
type CanaryWeights struct {
	Splitter *canary.Splitter
}

// SetWeight sets the canary's share in basis points.
func (c CanaryWeights) SetWeight(ctx context.Context, basisPoints int) error {
	if c.Splitter == nil {
		return fmt.Errorf("rollout: CanaryWeights has no Splitter")
	}
	if basisPoints < 0 || basisPoints > canary.MaxWeight {
		return fmt.Errorf("rollout: canary weight %d basis points is outside 0..%d", basisPoints, canary.MaxWeight)
	}
	return c.Splitter.SetWeight(uint32(basisPoints))
}

// CanaryAnalyzer judges the canary of a Splitter against its stable
// variant with a *canary.Analyzer over the splitter's current metrics
// window: canary's pass, fail and insufficient data become Pass, Fail and
// Inconclusive, and the analysis reason (which check failed, with its
// figures) becomes the decision's reason. Each call that runs a test
// spends one look of the analyzer's alpha budget: size
// canary.AnalysisOptions.Looks to the number of analyses the plan makes.
// The zero value (nil fields) fails every call.
type CanaryAnalyzer struct {
	Splitter *canary.Splitter
	Analyzer *canary.Analyzer
}

// Analyze runs one canary analysis.
func (c CanaryAnalyzer) Analyze(ctx context.Context) (Verdict, string, error) {
	if err := ctx.Err(); err != nil {
		return Inconclusive, "", err
	}
	if c.Splitter == nil || c.Analyzer == nil {
		return Inconclusive, "", fmt.Errorf("rollout: CanaryAnalyzer needs a Splitter and an Analyzer")
	}
	rep := c.Analyzer.Analyze(c.Splitter.Metrics().Snapshot())
	return verdictOf(rep.Verdict), rep.Reason, nil
}

func verdictOf(v canary.Verdict) Verdict {
	switch v {
	case canary.Pass:
		return Pass
	case canary.Fail:
		return Fail
	}
	return Inconclusive
}

var (
	_ WeightSetter = CanaryWeights{}
	_ Analyzer     = CanaryAnalyzer{}
)
