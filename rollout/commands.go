package rollout

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Command names, as the admin API spells them.
const (
	CmdPromote     = "promote"
	CmdPromoteFull = "promote-full"
	CmdAbort       = "abort"
	CmdPause       = "pause"
	CmdResume      = "resume"
	CmdRetry       = "retry"
)

func refuse(cmd, format string, args ...any) error {
	return &CommandError{Command: cmd, Reason: fmt.Sprintf(format, args...)}
}

// command runs f under the lock and persists its effect before returning.
func (r *Rollout) command(ctx context.Context, cmd string, f func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := f(); err != nil {
		r.log.Info("rollout command refused", "rollout", r.st.ID, "command", cmd, "err", err)
		return err
	}
	r.tel.command(ctx, cmd)
	return r.saveLocked(ctx)
}

// Promote ends the wait of the current step: a pause, a bake window, or an
// inconclusive analysis waiting for a human. It is refused when no step is
// waiting.
func (r *Rollout) Promote(ctx context.Context) error {
	return r.command(ctx, CmdPromote, func() error {
		if err := r.activeLocked(CmdPromote); err != nil {
			return err
		}
		if r.promoteCh == nil {
			return refuse(CmdPromote, "no step is waiting for promotion (current: %s)", r.currentLocked())
		}
		r.decideLocked(r.st.Current, "promoted by operator")
		close(r.promoteCh)
		r.promoteCh = nil
		return nil
	})
}

// PromoteFull skips what is left to wait for: remaining pauses and
// analyses are skipped, bake windows and ramps jump to their end. Steps
// that change the system (upgrades, weights, migrations, hooks) still run,
// because skipping them would leave it half changed.
func (r *Rollout) PromoteFull(ctx context.Context) error {
	return r.command(ctx, CmdPromoteFull, func() error {
		if err := r.activeLocked(CmdPromoteFull); err != nil {
			return err
		}
		if r.st.PromoteFull {
			return refuse(CmdPromoteFull, "promote-full already requested")
		}
		r.st.PromoteFull = true
		r.decideLocked(-1, "promote-full requested by operator: remaining pauses and analyses are skipped")
		if r.promoteCh != nil {
			close(r.promoteCh)
			r.promoteCh = nil
		}
		return nil
	})
}

// Abort stops the rollout and rolls back every reversible completed step in
// reverse. reason is recorded. The running step is cancelled through its
// context. If no Run is active, the next Run rolls back.
func (r *Rollout) Abort(ctx context.Context, reason string) error {
	reason = strings.TrimSpace(reason)
	if reason == "" {
		reason = "no reason given"
	}
	return r.command(ctx, CmdAbort, func() error {
		if err := r.activeLocked(CmdAbort); err != nil {
			return err
		}
		if r.st.AbortRequested != "" {
			return refuse(CmdAbort, "abort already requested: %s", r.st.AbortRequested)
		}
		r.st.AbortRequested = reason
		r.decideLocked(-1, "abort requested by operator: %s", reason)
		if r.stepCancel != nil {
			r.stepCancel(errAborted)
		}
		return nil
	})
}

// Pause stops the rollout before its next step (or the next unit of a ramp
// or a rolling update); the running unit finishes. Resume continues.
func (r *Rollout) Pause(ctx context.Context) error {
	return r.command(ctx, CmdPause, func() error {
		if err := r.activeLocked(CmdPause); err != nil {
			return err
		}
		if r.st.Paused {
			return refuse(CmdPause, "already paused")
		}
		r.st.Paused = true
		r.decideLocked(-1, "paused by operator")
		return nil
	})
}

// Resume continues a paused rollout.
func (r *Rollout) Resume(ctx context.Context) error {
	return r.command(ctx, CmdResume, func() error {
		if err := r.activeLocked(CmdResume); err != nil {
			return err
		}
		if !r.st.Paused {
			return refuse(CmdResume, "not paused")
		}
		r.st.Paused = false
		r.decideLocked(-1, "resumed by operator")
		return nil
	})
}

// Retry starts a rolled-back rollout again, from the first step after the
// last completed irreversible one (which is never repeated); or, when a
// rollback failed, retries the rollback. Run must then be called (again).
func (r *Rollout) Retry(ctx context.Context) error {
	return r.command(ctx, CmdRetry, func() error {
		switch r.st.Phase {
		case PhaseFailed:
			r.st.Phase = PhaseRollingBack
			r.decideLocked(-1, "retrying the rollback on operator request")
			return nil
		case PhaseRolledBack:
		default:
			return refuse(CmdRetry, "the rollout is %s; only a rolled-back or failed rollout can be retried", phaseName(r.st.Phase))
		}
		keep := -1
		for k := len(r.st.Steps) - 1; k >= 0; k-- {
			if r.st.Steps[k].Status == StepSucceeded && r.st.Steps[k].Irreversible {
				keep = k
				break
			}
		}
		for k := keep + 1; k < len(r.st.Steps); k++ {
			s := &r.st.Steps[k]
			s.Status, s.Progress, s.Handoff, s.From, s.To = StepPending, 0, HandoffNone, "", ""
			s.StartedAt, s.FinishedAt, s.RollbackStartedAt, s.RollbackFinishedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			s.WaitStartedAt, s.Waiting, s.Error = time.Time{}, false, ""
		}
		r.st.Phase = PhaseRunning
		r.st.Run++
		r.st.AbortRequested, r.st.Reason, r.st.PromoteFull, r.st.Paused = "", "", false, false
		r.st.FinishedAt = time.Time{}
		r.decideLocked(-1, "retry requested by operator (run %d)", r.st.Run)
		return nil
	})
}

func (r *Rollout) activeLocked(cmd string) error {
	switch r.st.Phase {
	case PhaseSucceeded, PhaseRolledBack, PhaseFailed:
		return refuse(cmd, "the rollout is %s", phaseName(r.st.Phase))
	case PhaseRollingBack:
		return refuse(cmd, "the rollout is rolling back: %s", r.st.Reason)
	}
	if r.st.AbortRequested != "" && cmd != CmdAbort {
		return refuse(cmd, "abort requested: %s", r.st.AbortRequested)
	}
	return nil
}

func (r *Rollout) currentLocked() string {
	if r.st.Current < 0 || r.st.Current >= len(r.st.Steps) {
		return "no step running"
	}
	s := r.st.Steps[r.st.Current]
	return fmt.Sprintf("step %q (%s) %s", s.Name, s.Kind, s.Status)
}

func phaseName(p Phase) string {
	if p == PhasePending {
		return "pending"
	}
	return string(p)
}
