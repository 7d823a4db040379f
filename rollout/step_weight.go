package rollout

import (
	"context"
	"errors"
	"fmt"
)

// SetWeight is a step that sends weight basis points (0..MaxWeight) of the
// traffic to the canary. The weight is recorded in Status.Weight before w
// is called, so that the process of the release's version applies it when
// it starts (see Rollout.Restore and RecordWeight). Its rollback sets the
// weight to 0.
func SetWeight(w WeightSetter, weight uint32) Step {
	return Step{act: &weightAction{w: w, bp: weight}}
}

type weightAction struct {
	w  WeightSetter
	bp uint32
}

func (a *weightAction) kind() Kind          { return KindSetWeight }
func (a *weightAction) defaultName() string { return fmt.Sprintf("set-weight-%d", a.bp) }
func (a *weightAction) irreversible() bool  { return false }
func (a *weightAction) describe() string {
	return fmt.Sprintf("set canary weight to %s", pct(a.bp))
}

func pct(bp uint32) string { return fmt.Sprintf("%d.%02d%%", bp/100, bp%100) }

func (a *weightAction) validate() error {
	if a.w == nil {
		return errors.New("nil WeightSetter")
	}
	if a.bp > MaxWeight {
		return fmt.Errorf("weight %d basis points is outside 0..%d", a.bp, MaxWeight)
	}
	return nil
}

func (a *weightAction) run(ctx context.Context, x *stepCtx) error { return a.set(ctx, x, a.bp) }

func (a *weightAction) undo(ctx context.Context, x *stepCtx) error { return a.set(ctx, x, 0) }

// set records bp as the release's weight, then applies it: a process that
// starts between the two applies the new weight itself.
func (a *weightAction) set(ctx context.Context, x *stepCtx, bp uint32) error {
	if err := x.update(ctx, func(st *Status, _ *StepState) { st.Weight = &bp }); err != nil {
		return err
	}
	if err := a.w.SetWeight(ctx, bp); err != nil {
		return fmt.Errorf("set weight %s: %w", pct(bp), err)
	}
	reason := "canary weight set to " + pct(bp)
	if x.undoing {
		reason = "canary weight back to 0%"
	}
	return x.record(ctx, Decision{Reason: reason, Weight: &bp})
}
