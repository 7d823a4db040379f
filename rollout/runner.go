package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Run drives the rollout from where the state stands until it ends. It
// returns nil when every step succeeded; an error wrapping ErrRolledBack
// after a failure or abort was rolled back; ErrRollbackFailed if a rollback
// action failed; ErrHandedOff when another process took over; ctx.Err()
// when ctx ends; an error wrapping ErrNotSaved when the store refused a
// write (a full disk, a lost database). After the last two the state is
// resumable: the step that was running is still recorded running, and a
// new Run continues it. While the rollout is paused, Run blocks.
func (r *Rollout) Run(ctx context.Context) (err error) {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return ErrRunning
	}
	r.running = true
	stored := r.st.Trace
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}()
	ctx, ref, end := r.tel.startRollout(ctx, r.plan.ID, orUnknown(r.opts.Version), stored)
	defer func() { end(err) }()
	if ref != nil && stored == nil {
		// Saved with the next transition, which comes before any step's
		// effect: a process that resumes finds the trace to continue.
		r.mu.Lock()
		r.pendingTrace = ref
		r.mu.Unlock()
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		next, err := r.nextStep(ctx)
		if err != nil || next == stepNone {
			return err
		}
		if next == stepRollback {
			if err := r.rollback(ctx); err != nil {
				return err
			}
			continue
		}
		if next == stepWait {
			continue
		}
		if err := r.execStep(ctx, int(next)); err != nil {
			return err
		}
	}
}

// Outcomes of nextStep other than a step index.
const (
	stepNone     = -1 // Run returns (with the error, if any)
	stepRollback = -2 // roll back
	stepWait     = -3 // look again (a pause ended, a transition was saved)
)

// nextStep decides what Run does next: a step index to run, or one of the
// step* outcomes. It blocks while the rollout is paused.
func (r *Rollout) nextStep(ctx context.Context) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lost != nil {
		return stepNone, r.lost
	}
	switch r.st.Phase {
	case PhaseSucceeded:
		return stepNone, nil
	case PhaseRolledBack:
		return stepNone, fmt.Errorf("%w: %s", ErrRolledBack, r.st.Reason)
	case PhaseFailed:
		return stepNone, fmt.Errorf("%w: %s", ErrRollbackFailed, r.st.Reason)
	case PhaseRollingBack:
		return stepRollback, nil
	case PhasePending:
		return stepWait, r.txLocked(ctx, func(st *Status) error {
			st.Phase = PhaseRunning
			st.StartedAt = r.clock.Now()
			if st.Run == 0 {
				st.Run = 1
			}
			r.decide(st, -1, "rollout started (version %s)", orUnknown(r.opts.Version))
			return nil
		})
	}
	if r.st.AbortRequested != "" {
		return stepWait, r.txLocked(ctx, func(st *Status) error {
			r.beginRollback(st, fmt.Sprintf("aborted by operator: %s", st.AbortRequested))
			return nil
		})
	}
	if r.st.Paused {
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
		}
		r.mu.Lock()
		return stepWait, ctx.Err()
	}
	i := 0
	for i < len(r.st.Steps) && (r.st.Steps[i].Status == StepSucceeded || r.st.Steps[i].Status == StepSkipped) {
		i++
	}
	if i == len(r.st.Steps) {
		return stepNone, r.finishLocked(ctx, PhaseSucceeded, "every step succeeded", nil)
	}
	return i, nil
}

// finishLocked ends the rollout in phase (succeeded or rolled back: no step
// is current any more), records why and saves, with the changes of also
// (when not nil) in the same transition.
func (r *Rollout) finishLocked(ctx context.Context, phase Phase, reason string, also func(st *Status)) error {
	return r.txLocked(ctx, func(st *Status) error {
		if also != nil {
			also(st)
		}
		st.Phase = phase
		st.Current = -1
		st.FinishedAt = r.clock.Now()
		r.decide(st, -1, "%s", reason)
		return nil
	})
}

// beginRollback switches st to rolling back, with reason.
func (r *Rollout) beginRollback(st *Status, reason string) {
	st.Phase = PhaseRollingBack
	st.Reason = reason
	r.decide(st, -1, "rolling back: %s", reason)
}

// execStep runs step i once. It returns an error only when Run must return
// (context ended, handoff, lost drive, state not saved); a failed step
// switches the rollout to rolling back and returns nil.
func (r *Rollout) execStep(ctx context.Context, i int) error {
	step := r.plan.Steps[i]
	r.mu.Lock()
	if r.st.PromoteFull && skippedByPromoteFull(step.act.kind()) {
		defer r.mu.Unlock()
		r.tel.stepOutcome(ctx, step.act.kind(), "skipped", 0)
		return r.txLocked(ctx, func(st *Status) error {
			s := &st.Steps[i]
			s.Status = StepSkipped
			s.FinishedAt = r.clock.Now()
			r.decide(st, i, "skipped: promote-full requested by operator")
			return nil
		})
	}
	var attempt int
	err := r.txLocked(ctx, func(st *Status) error {
		s := &st.Steps[i]
		resumed := s.Status == StepRunning
		s.Status = StepRunning
		s.Attempts++
		s.Error = ""
		if s.StartedAt.IsZero() || !resumed {
			s.StartedAt = r.clock.Now()
		}
		s.FinishedAt = time.Time{}
		st.Current = i
		if resumed && (s.From == "" || s.From == r.opts.Version) {
			// (A process of another version resuming a handoff step
			// records the takeover instead.)
			r.decide(st, i, "resuming after a restart (attempt %d, progress %d)", s.Attempts, s.Progress)
		}
		attempt = s.Attempts
		return nil
	})
	if err != nil {
		r.mu.Unlock()
		return err
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.stepCancel = cancel
	r.mu.Unlock()
	r.log.Info("rollout step started", "rollout", r.plan.ID, "step", step.Name, "kind", step.act.kind(), "attempt", attempt)

	err = r.attempt(ctx, sctx, step, "run", func(ctx context.Context) error {
		return step.act.run(ctx, &stepCtx{r: r, i: i})
	})

	r.mu.Lock()
	defer r.mu.Unlock()
	r.stepCancel = nil
	kind := step.act.kind()
	dur := r.clock.Now().Sub(r.st.Steps[i].StartedAt)
	switch {
	case errors.Is(err, errHandedOff):
		r.tel.stepOutcome(ctx, kind, "handed-off", dur)
		r.log.Info("rollout handed off", "rollout", r.st.ID, "step", step.Name)
		return ErrHandedOff
	case r.lost != nil:
		return r.lost
	case errors.Is(err, ErrNotSaved):
		// Like a cancelled context: the step stays recorded running (its
		// effect may have happened, or not), and the next Run resumes it.
		// A store that fails is no reason to roll back.
		return err
	case err == nil:
		r.tel.stepOutcome(ctx, kind, "succeeded", dur)
		r.log.Info("rollout step succeeded", "rollout", r.st.ID, "step", step.Name, "duration", dur)
		return r.txLocked(ctx, func(st *Status) error {
			s := &st.Steps[i]
			s.Status = StepSucceeded
			s.FinishedAt = r.clock.Now()
			s.Waiting = false
			return nil
		})
	case ctx.Err() != nil && r.st.AbortRequested == "":
		// The caller stopped Run: leave the step running so that the next
		// Run resumes it.
		return ctx.Err()
	default:
		r.tel.stepOutcome(ctx, kind, "failed", dur)
		r.log.Warn("rollout step failed", "rollout", r.st.ID, "step", step.Name, "err", err)
		return r.txLocked(ctx, func(st *Status) error {
			s := &st.Steps[i]
			s.Status = StepFailed
			s.FinishedAt = r.clock.Now()
			s.Waiting = false
			s.Error = err.Error()
			reason := fmt.Sprintf("step %q (%s) failed: %v", s.Name, s.Kind, err)
			if st.AbortRequested != "" {
				reason = fmt.Sprintf("aborted by operator during step %q: %s", s.Name, st.AbortRequested)
			}
			r.beginRollback(st, reason)
			return nil
		})
	}
}

// attempt runs one attempt of a step's action or rollback (op "run" or
// "rollback") under the step's span and Timeout, in the step context
// sctx, whose end Run's ctx does not explain (abort, timeout) is reported
// as the error's cause.
func (r *Rollout) attempt(ctx, sctx context.Context, step Step, op string, f func(context.Context) error) error {
	sctx, endSpan := r.tel.startStep(sctx, step.Name, step.act.kind(), op)
	runCtx := sctx
	stop := context.CancelFunc(func() {})
	if step.Timeout > 0 {
		what := "step"
		if op == "rollback" {
			what = "rollback"
		}
		runCtx, stop = context.WithTimeoutCause(sctx, step.Timeout, fmt.Errorf("%s timed out after %s", what, step.Timeout))
	}
	err := f(runCtx)
	if err != nil && runCtx.Err() != nil && ctx.Err() == nil {
		// Report why the context ended (abort, timeout) rather than the
		// bare "context canceled" the consumer returned; a consumer that
		// returned the cause itself says it already.
		if cause := context.Cause(runCtx); !errors.Is(err, cause) {
			err = fmt.Errorf("%w (%v)", cause, err)
		}
	}
	stop()
	endSpan(err)
	return err
}

func skippedByPromoteFull(k Kind) bool { return k == KindPause || k == KindAnalyze }

// Drive runs the rollout like Run and, each time it ends (succeeded,
// rolled back or failed), waits for an operator's Retry and runs it again.
// It suits a long-lived service whose admin API offers retry. It returns
// ctx.Err() when ctx ends, ErrHandedOff when another process took the
// drive, or the error that stopped a Run for another cause (a lost drive,
// a state the store did not save).
func (r *Rollout) Drive(ctx context.Context) error {
	for {
		err := r.Run(ctx)
		switch {
		case err == nil, errors.Is(err, ErrRolledBack), errors.Is(err, ErrRollbackFailed):
			r.log.Info("rollout ended; waiting for a retry", "rollout", r.plan.ID, "result", fmt.Sprint(err))
		default:
			return err
		}
		for {
			r.mu.Lock()
			done, ch := r.st.Phase.Done(), r.changed
			r.mu.Unlock()
			if !done {
				break
			}
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
}
