package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/batonhq/baton/canary"
)

// CanaryWeights drives set-weight steps with a *canary.Splitter: SetWeight
// is Splitter.SetWeight, an atomic store the next request sees (it also
// clears a halt). The zero value (nil Splitter) fails every call.
//
// A Splitter's weight lives in memory: a process that restarts, or the new
// process of an upgrade, starts at canary.Options.Weight while the rollout
// state says the set-weight step is done (it is not run again). With
// StateFile set, SetWeight first writes the weight to that file
// (atomically), and Restore, called at start, applies it again.
type CanaryWeights struct {
	Splitter *canary.Splitter
	// StateFile keeps the weight across restarts; empty means in memory
	// only.
	StateFile string
}

// SetWeight sets the canary's share in basis points.
func (c CanaryWeights) SetWeight(ctx context.Context, basisPoints int) error {
	if c.Splitter == nil {
		return fmt.Errorf("rollout: CanaryWeights has no Splitter")
	}
	if basisPoints < 0 || basisPoints > canary.MaxWeight {
		return fmt.Errorf("rollout: canary weight %d basis points is outside 0..%d", basisPoints, canary.MaxWeight)
	}
	if c.StateFile != "" {
		if err := writeFileAtomic(c.StateFile, basisPoints); err != nil {
			return err
		}
	}
	return c.Splitter.SetWeight(uint32(basisPoints))
}

// Restore applies the weight recorded in StateFile, if any, to the
// Splitter. Call it before serving.
func (c CanaryWeights) Restore() error {
	if c.Splitter == nil || c.StateFile == "" {
		return nil
	}
	data, err := os.ReadFile(c.StateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("rollout: canary weight state: %w", err)
	}
	var bp uint32
	if err := json.Unmarshal(data, &bp); err != nil {
		return fmt.Errorf("rollout: canary weight state file %s: %w", c.StateFile, err)
	}
	if err := c.Splitter.SetWeight(bp); err != nil {
		return fmt.Errorf("rollout: canary weight state file %s: %w", c.StateFile, err)
	}
	return nil
}

// CanaryAnalyzer judges the canary of a Splitter against its stable
// variant with a *canary.Analyzer over the splitter's metrics at its
// current weight: canary's pass, fail and inconclusive become Pass, Fail
// and Inconclusive, and the analysis reason (which check failed, with its
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
