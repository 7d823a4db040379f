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

// command runs f under the lock on a copy of the state, persists the copy
// and only then makes it the state and runs the effect f returned (wake a
// waiting step, cancel the running one). A command the store could not
// save changed nothing: not the state in memory, not the runner.
func (r *Rollout) command(ctx context.Context, cmd string, f func(st *Status) (effect func(), err error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	next := r.st.clone()
	effect, err := f(&next)
	if err != nil {
		r.log.Info("rollout command refused", "rollout", r.st.ID, "command", cmd, "err", err)
		return err
	}
	if err := r.commitLocked(ctx, &next); err != nil {
		return err
	}
	r.tel.command(ctx, cmd)
	if effect != nil {
		effect()
	}
	return nil
}

// wakeLocked ends the current wait for promotion, if a step waits.
func (r *Rollout) wakeLocked() {
	if r.promoteCh != nil {
		close(r.promoteCh)
		r.promoteCh = nil
	}
}

// Promote ends the wait of the current step: a pause, a bake window, or an
// inconclusive analysis waiting for a human. It is refused when no step is
// waiting.
func (r *Rollout) Promote(ctx context.Context) error {
	return r.command(ctx, CmdPromote, func(st *Status) (func(), error) {
		if err := r.refusalLocked(st, CmdPromote); err != nil {
			return nil, err
		}
		r.decide(st, st.Current, "promoted by operator")
		return r.wakeLocked, nil
	})
}

// PromoteFull skips what is left to wait for: remaining pauses and
// analyses are skipped, bake windows and ramps jump to their end. Steps
// that change the system (upgrades, weights, migrations, hooks) still run,
// because skipping them would leave it half changed.
func (r *Rollout) PromoteFull(ctx context.Context) error {
	return r.command(ctx, CmdPromoteFull, func(st *Status) (func(), error) {
		if err := r.refusalLocked(st, CmdPromoteFull); err != nil {
			return nil, err
		}
		st.PromoteFull = true
		r.decide(st, -1, "promote-full requested by operator: remaining pauses and analyses are skipped")
		return r.wakeLocked, nil
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
	return r.command(ctx, CmdAbort, func(st *Status) (func(), error) {
		if err := r.refusalLocked(st, CmdAbort); err != nil {
			return nil, err
		}
		st.AbortRequested = reason
		r.decide(st, -1, "abort requested by operator: %s", reason)
		return func() {
			if r.stepCancel != nil {
				r.stepCancel(errAborted)
			}
		}, nil
	})
}

// Pause stops the rollout before its next step (or the next unit of a ramp
// or a rolling update); the running unit finishes. Resume continues.
func (r *Rollout) Pause(ctx context.Context) error {
	return r.command(ctx, CmdPause, func(st *Status) (func(), error) {
		if err := r.refusalLocked(st, CmdPause); err != nil {
			return nil, err
		}
		st.Paused = true
		r.decide(st, -1, "paused by operator")
		return nil, nil
	})
}

// Resume continues a paused rollout.
func (r *Rollout) Resume(ctx context.Context) error {
	return r.command(ctx, CmdResume, func(st *Status) (func(), error) {
		if err := r.refusalLocked(st, CmdResume); err != nil {
			return nil, err
		}
		st.Paused = false
		r.decide(st, -1, "resumed by operator")
		return nil, nil
	})
}

// Retry starts a rolled-back rollout again, from the first step after the
// last point of no return (an irreversible step or a promoted blue-green
// step, which is never repeated); or, when a rollback failed, retries the
// rollback. Run must then be called (again).
func (r *Rollout) Retry(ctx context.Context) error {
	return r.command(ctx, CmdRetry, func(st *Status) (func(), error) {
		if err := r.refusalLocked(st, CmdRetry); err != nil {
			return nil, err
		}
		if st.Phase == PhaseFailed {
			st.Phase = PhaseRollingBack
			r.decide(st, -1, "retrying the rollback on operator request")
			return nil, nil
		}
		keep := -1
		for k := len(st.Steps) - 1; k >= 0; k-- {
			if pointOfNoReturn(&st.Steps[k]) {
				keep = k
				break
			}
		}
		for k := keep + 1; k < len(st.Steps); k++ {
			s := &st.Steps[k]
			s.Status, s.Progress, s.Handoff, s.From, s.To, s.Promoted = StepPending, 0, HandoffNone, "", "", false
			s.StartedAt, s.FinishedAt, s.RollbackStartedAt, s.RollbackFinishedAt = time.Time{}, time.Time{}, time.Time{}, time.Time{}
			s.WaitStartedAt, s.Waiting, s.Error = time.Time{}, false, ""
		}
		st.Phase = PhaseRunning
		st.Run++
		st.AbortRequested, st.Reason, st.PromoteFull, st.Paused = "", "", false, false
		st.FinishedAt = time.Time{}
		r.decide(st, -1, "retry requested by operator (run %d)", st.Run)
		return nil, nil
	})
}

// Command runs the operator command named cmd (CmdPromote, CmdAbort, ...;
// reason is the abort's) as its method would: the admin API and
// rollout/fleet's driver apply what they receive through it. An unknown
// name is refused with a *CommandError.
func (r *Rollout) Command(ctx context.Context, cmd, reason string) error {
	switch cmd {
	case CmdPromote:
		return r.Promote(ctx)
	case CmdPromoteFull:
		return r.PromoteFull(ctx)
	case CmdAbort:
		return r.Abort(ctx, reason)
	case CmdPause:
		return r.Pause(ctx)
	case CmdResume:
		return r.Resume(ctx)
	case CmdRetry:
		return r.Retry(ctx)
	}
	return &CommandError{Command: cmd, Reason: "unknown command"}
}

// Refusals returns, for each command that would be refused now, the
// *CommandError it would return (the admin API's 409 reason); a command
// missing from the map would be accepted. The console disables the
// buttons of the refused ones and shows why.
func (r *Rollout) Refusals() map[string]error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.refusalsLocked()
}

func (r *Rollout) refusalsLocked() map[string]error {
	out := map[string]error{}
	for _, cmd := range commandNames {
		if err := r.refusalLocked(&r.st, cmd); err != nil {
			out[cmd] = err
		}
	}
	return out
}

// refusalLocked says why cmd would be refused on st, or nil. Commands and
// Refusals share it, so that the console and the API never disagree.
func (r *Rollout) refusalLocked(st *Status, cmd string) error {
	if cmd == CmdRetry {
		if st.Phase != PhaseFailed && st.Phase != PhaseRolledBack {
			return refuse(CmdRetry, "the rollout is %s; only a rolled-back or failed rollout can be retried", phaseName(st.Phase))
		}
		return nil
	}
	if err := active(st, cmd); err != nil {
		return err
	}
	switch {
	case cmd == CmdPromote && r.promoteCh == nil:
		return refuse(CmdPromote, "no step is waiting for promotion (current: %s)", current(st))
	case cmd == CmdPromoteFull && st.PromoteFull:
		return refuse(CmdPromoteFull, "promote-full already requested")
	case cmd == CmdAbort && st.AbortRequested != "":
		return refuse(CmdAbort, "abort already requested: %s", st.AbortRequested)
	case cmd == CmdPause && st.Paused:
		return refuse(CmdPause, "already paused")
	case cmd == CmdResume && !st.Paused:
		return refuse(CmdResume, "not paused")
	}
	return nil
}

// active refuses cmd unless the rollout is pending or running with no
// abort pending (an abort may be sent once).
func active(st *Status, cmd string) error {
	switch st.Phase {
	case PhaseSucceeded, PhaseRolledBack, PhaseFailed:
		return refuse(cmd, "the rollout is %s", phaseName(st.Phase))
	case PhaseRollingBack:
		return refuse(cmd, "the rollout is rolling back: %s", st.Reason)
	}
	if st.AbortRequested != "" && cmd != CmdAbort {
		return refuse(cmd, "abort requested: %s", st.AbortRequested)
	}
	return nil
}

func current(st *Status) string {
	if st.Current < 0 || st.Current >= len(st.Steps) {
		return "no step running"
	}
	s := st.Steps[st.Current]
	return fmt.Sprintf("step %q (%s) %s", s.Name, s.Kind, s.Status)
}

func phaseName(p Phase) string {
	if p == PhasePending {
		return "pending"
	}
	return string(p)
}
