package rollout

import (
	"context"
	"errors"
	"fmt"
)

// pointOfNoReturn reports whether a completed step stops a rollback: an
// irreversible step, or a blue-green step whose bake was promoted (its old
// process is gone).
func pointOfNoReturn(s *StepState) bool {
	return s.Status == StepSucceeded && (s.Irreversible || s.Promoted)
}

// rollback undoes completed steps in reverse. It returns nil when the
// rollout reached a final phase (Run then reports it), or the error Run
// must return (context ended, handoff, lost drive, state not saved; the
// step being rolled back stays recorded rolling back).
func (r *Rollout) rollback(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		j, err := r.nextUndo(ctx)
		if err != nil || j < 0 {
			return err
		}
		step := r.plan.Steps[j]
		err = r.attempt(ctx, ctx, step, "rollback", func(ctx context.Context) error {
			return step.act.undo(ctx, &stepCtx{r: r, i: j, undoing: true})
		})
		if err := r.undone(ctx, j, err); err != nil || r.Status().Phase == PhaseFailed {
			return err
		}
	}
}

// nextUndo finds the next step to roll back and records it rolling back,
// or ends the rollback (j < 0) when none is left before the latest point
// of no return.
func (r *Rollout) nextUndo(ctx context.Context) (j int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	j, stop := -1, -1
	for k := len(r.st.Steps) - 1; k >= 0; k-- {
		s := &r.st.Steps[k]
		if pointOfNoReturn(s) {
			stop = k
			break
		}
		switch s.Status {
		case StepSucceeded, StepFailed, StepRollingBack, StepRollbackFailed, StepRunning:
			j = k
		}
		if j >= 0 {
			break
		}
	}
	if j < 0 {
		if stop < 0 {
			return -1, r.finishLocked(ctx, PhaseRolledBack, "rollback complete", nil)
		}
		reason := fmt.Sprintf("rollback complete back to step %q, a point of no return", r.st.Steps[stop].Name)
		return -1, r.finishLocked(ctx, PhaseRolledBack, reason, func(st *Status) {
			s := &st.Steps[stop]
			if !s.RollbackStartedAt.IsZero() {
				return
			}
			s.RollbackStartedAt = r.clock.Now()
			if s.Promoted && !s.Irreversible {
				r.decide(st, stop, "not rolled back: the bake was promoted and version %s is gone; the rollback stops at this point of no return and earlier steps stay applied", s.From)
			} else {
				r.decide(st, stop, "not rolled back: the step is irreversible; rollback stops here and earlier steps stay applied")
			}
		})
	}
	return j, r.txLocked(ctx, func(st *Status) error {
		s := &st.Steps[j]
		if s.Status != StepRollingBack {
			s.RollbackStartedAt = r.clock.Now()
		}
		s.Status = StepRollingBack
		st.Current = j
		return nil
	})
}

// undone records the outcome of rolling back step j.
func (r *Rollout) undone(ctx context.Context, j int, err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	kind := r.plan.Steps[j].act.kind()
	switch {
	case errors.Is(err, errHandedOff):
		r.tel.stepOutcome(ctx, kind, "rollback-handed-off", 0)
		return ErrHandedOff
	case r.lost != nil:
		return r.lost
	case errors.Is(err, ErrNotSaved):
		return err
	case err == nil:
		return r.txLocked(ctx, func(st *Status) error {
			s := &st.Steps[j]
			s.Status = StepRolledBack
			s.RollbackFinishedAt = r.clock.Now()
			r.tel.stepOutcome(ctx, kind, "rolled-back", s.RollbackFinishedAt.Sub(s.RollbackStartedAt))
			return nil
		})
	case ctx.Err() != nil:
		return ctx.Err()
	default:
		r.tel.stepOutcome(ctx, kind, "rollback-failed", 0)
		return r.txLocked(ctx, func(st *Status) error {
			s := &st.Steps[j]
			s.Status = StepRollbackFailed
			s.RollbackFinishedAt = r.clock.Now()
			s.Error = err.Error()
			st.Phase = PhaseFailed
			st.Reason = fmt.Sprintf("%s; then the rollback of step %q (%s) failed: %v", st.Reason, s.Name, s.Kind, err)
			r.decide(st, j, "rollback failed: %v; the rollout stops here and needs an operator (retry retries the rollback)", err)
			return nil
		})
	}
}
