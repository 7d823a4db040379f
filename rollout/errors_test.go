package rollout_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/batonhq/baton/rollout"
)

// Each error type unwraps to its package sentinel, also when wrapped
// again, and keeps the message an operator reads.
func TestErrorTypesUnwrapToSentinels(t *testing.T) {
	cases := []struct {
		err      error
		sentinel error
		msg      string
	}{
		{&rollout.PlanError{Step: 2, Name: "w", Reason: "nil WeightSetter"}, rollout.ErrInvalidPlan, "rollout: invalid plan: step 2 (w): nil WeightSetter"},
		{&rollout.PlanError{Step: -1, Reason: "no steps"}, rollout.ErrInvalidPlan, "rollout: invalid plan: no steps"},
		{&rollout.CommandError{Command: "promote", Reason: "nothing waits"}, rollout.ErrInvalidCommand, "rollout: promote refused: nothing waits"},
		{&rollout.AnalysisError{Verdict: rollout.Fail, Reason: "error rate 7%"}, rollout.ErrAnalysisFailed, "analysis fail: error rate 7%"},
	}
	for _, c := range cases {
		wrapped := fmt.Errorf("step %q: %w", "x", c.err)
		if !errors.Is(wrapped, c.sentinel) {
			t.Errorf("%T does not unwrap to %v", c.err, c.sentinel)
		}
		if c.err.Error() != c.msg {
			t.Errorf("%T says %q, want %q", c.err, c.err.Error(), c.msg)
		}
	}
	var ae *rollout.AnalysisError
	if !errors.As(fmt.Errorf("bake: %w", &rollout.AnalysisError{Verdict: rollout.Fail, Reason: "r"}), &ae) || ae.Reason != "r" {
		t.Error("errors.As does not find the *AnalysisError")
	}
	if errors.Is(&rollout.AnalysisError{}, rollout.ErrInvalidPlan) {
		t.Error("AnalysisError matches an unrelated sentinel")
	}
}
