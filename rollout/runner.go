package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// DefaultStateDir is the directory of the FileStore used when Options.Store
// is nil, relative to the working directory.
const DefaultStateDir = ".baton-rollout"

// Options configure a Rollout. The zero value is usable for plans without
// handoff steps: state in a FileStore under DefaultStateDir, the system
// clock, no logs, no-op telemetry.
type Options struct {
	// Store persists the state after every transition. Nil means a
	// FileStore in DefaultStateDir.
	Store Store
	// Version is the version of the running binary. Required when the plan
	// has upgrade or blue-green steps: it is how a process that loads the
	// state knows whether it is the old or the new side of a handoff.
	Version string
	// Clock drives pauses, bake windows and intervals. Nil means the
	// system clock.
	Clock Clock
	// Logger receives one event per transition. Nil discards.
	Logger *slog.Logger
	// TracerProvider gets one trace per rollout, continued across Runs,
	// restarts and handoffs (State.Trace), with a span per Run and per
	// step. Nil means no-op.
	TracerProvider trace.TracerProvider
	// MeterProvider gets step outcome counters and durations. Nil means
	// no-op.
	MeterProvider metric.MeterProvider
}

// Rollout drives one Plan. Create it with New in every process that may
// drive the plan, call Run, and give it to NewHandler for the admin API.
// Commands (Promote, Abort, ...) may be called from any goroutine; they are
// serialized with each other and with the runner's transitions, and each is
// persisted before it returns. The zero value is not usable: use New.
type Rollout struct {
	plan  Plan
	opts  Options
	store Store
	clock Clock
	log   *slog.Logger
	tel   *telemetry

	mu         sync.Mutex // guards everything below and serializes saves
	st         State
	running    bool
	stepCancel context.CancelCauseFunc
	promoteCh  chan struct{} // non-nil while a step waits for promotion
	changed    chan struct{} // closed and replaced on every command
	lost       error         // set when a save conflicted: another runner drives
}

// errAborted is the cancel cause of a step interrupted by Abort.
var errAborted = errors.New("aborted by operator")

// errHandedOff is returned by an action that handed the drive away.
var errHandedOff = errors.New("handed off")

// New loads the state of plan.ID from the store, or creates it. It fails
// with ErrPlanChanged if the stored state belongs to a plan with other
// step names or kinds.
func New(ctx context.Context, plan Plan, opts Options) (*Rollout, error) {
	p, err := plan.normalize()
	if err != nil {
		return nil, err
	}
	for i, s := range p.Steps {
		if k := s.act.kind(); (k == KindUpgrade || k == KindBlueGreen) && opts.Version == "" {
			return nil, &PlanError{Step: i, Name: s.Name, Reason: "Options.Version is required for upgrade steps"}
		}
	}
	r := &Rollout{plan: p, opts: opts, store: opts.Store, clock: opts.Clock, log: opts.Logger, changed: make(chan struct{})}
	if r.store == nil {
		fs, err := NewFileStore(FileStoreOptions{Dir: DefaultStateDir})
		if err != nil {
			return nil, err
		}
		r.store = fs
	}
	if r.clock == nil {
		r.clock = SystemClock
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.tel = newTelemetry(opts.TracerProvider, opts.MeterProvider)
	data, rev, err := r.store.Load(ctx, p.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		r.st = State{ID: p.ID, PlanHash: p.hash(), Current: -1}
		for _, s := range p.Steps {
			r.st.Steps = append(r.st.Steps, StepState{
				Name: s.Name, Kind: s.act.kind(), Description: s.act.describe(),
				Irreversible: s.act.irreversible(), Status: StepPending,
			})
		}
		r.st.UpdatedAt = r.clock.Now()
		if err := r.saveLocked(ctx); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("rollout: loading %q: %w", p.ID, err)
	default:
		if err := json.Unmarshal(data, &r.st); err != nil {
			return nil, fmt.Errorf("rollout: stored state of %q is not valid JSON: %w", p.ID, err)
		}
		r.st.Revision = rev
		// Waiting describes a live runner; the one that wrote it is gone.
		for i := range r.st.Steps {
			r.st.Steps[i].Waiting = false
		}
		if r.st.PlanHash != p.hash() || len(r.st.Steps) != len(p.Steps) {
			return nil, fmt.Errorf("%w: %q was stored with plan %s, this plan is %s: use a new id for a new plan", ErrPlanChanged, p.ID, r.st.PlanHash, p.hash())
		}
	}
	return r, nil
}

// ID returns the rollout id.
func (r *Rollout) ID() string { return r.plan.ID }

// Status returns a copy of the current state.
func (r *Rollout) Status() State {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.clone()
}

// saveLocked writes the state with compare-and-swap on the revision.
func (r *Rollout) saveLocked(ctx context.Context) error {
	if r.lost != nil {
		return r.lost
	}
	r.st.UpdatedAt = r.clock.Now()
	data, err := json.Marshal(&r.st)
	if err != nil {
		return fmt.Errorf("rollout: encoding state: %w", err)
	}
	// A save must not be lost because the step's context was cancelled
	// (abort, timeout): the transition it records already happened.
	rev, err := r.store.Save(context.WithoutCancel(ctx), r.st.ID, r.st.Revision, data)
	if err != nil {
		if errors.Is(err, ErrConflict) {
			r.lost = fmt.Errorf("rollout: %q: another runner wrote the state (revision %d is stale); this runner stops: %w", r.st.ID, r.st.Revision, err)
			return r.lost
		}
		return fmt.Errorf("rollout: saving %q: %w", r.st.ID, err)
	}
	r.st.Revision = rev
	r.broadcastLocked()
	return nil
}

// Changed returns a channel that is closed at the next persisted
// transition or command: watch it, then read Status.
func (r *Rollout) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// finishLocked ends the rollout in phase (succeeded or rolled back: no step
// is current any more), records why and saves.
func (r *Rollout) finishLocked(ctx context.Context, phase Phase, reason string) error {
	r.st.Phase = phase
	r.st.Current = -1
	r.st.FinishedAt = r.clock.Now()
	r.decideLocked(-1, "%s", reason)
	return r.saveLocked(ctx)
}

// decideLocked records a decision on step i (or on the rollout if i < 0).
func (r *Rollout) decideLocked(i int, format string, args ...any) {
	d := Decision{At: r.clock.Now(), Reason: fmt.Sprintf(format, args...)}
	if i < 0 {
		r.st.Decisions = append(r.st.Decisions, d)
		r.log.Info("rollout decision", "rollout", r.st.ID, "reason", d.Reason)
		return
	}
	r.st.Steps[i].Decisions = capDecisions(append(r.st.Steps[i].Decisions, d))
	r.log.Info("rollout decision", "rollout", r.st.ID, "step", r.st.Steps[i].Name, "reason", d.Reason)
}

// MaxStepDecisions bounds the decisions kept per step (a confirm hook or a
// long wait records one per interval): beyond it the oldest are dropped,
// except the first ones, and a marker says how many.
const MaxStepDecisions = 200

const keptFirstDecisions = 20

func capDecisions(ds []Decision) []Decision {
	if len(ds) <= MaxStepDecisions {
		return ds
	}
	head, tail := ds[:keptFirstDecisions], ds[keptFirstDecisions:]
	dropped := 0
	if m := tail[0]; m.At.IsZero() { // the marker of an earlier cap
		fmt.Sscanf(m.Reason, "(%d earlier decisions dropped)", &dropped)
		tail = tail[1:]
	}
	keep := MaxStepDecisions - keptFirstDecisions - 1
	dropped += len(tail) - keep
	out := make([]Decision, 0, MaxStepDecisions)
	out = append(out, head...)
	out = append(out, Decision{Reason: fmt.Sprintf("(%d earlier decisions dropped)", dropped)})
	return append(out, tail[len(tail)-keep:]...)
}

func (r *Rollout) broadcastLocked() {
	close(r.changed)
	r.changed = make(chan struct{})
}

// Run drives the rollout from where the state stands until it ends. It
// returns nil when every step succeeded; an error wrapping ErrRolledBack
// after a failure or abort was rolled back; ErrRollbackFailed if a rollback
// action failed; ErrHandedOff when another process took over; ctx.Err()
// when ctx ends (the state stays resumable: a new Run continues it). While
// the rollout is paused, Run blocks.
func (r *Rollout) Run(ctx context.Context) (err error) {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return ErrRunning
	}
	r.running = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}()
	r.mu.Lock()
	stored := r.st.Trace
	r.mu.Unlock()
	ctx, ref, end := r.tel.startRollout(ctx, r.plan.ID, orUnknown(r.opts.Version), stored)
	defer func() { end(err) }()
	if ref != nil && stored == nil {
		// Saved with the next transition, which comes before any step's
		// effect: a process that resumes finds the trace to continue.
		r.mu.Lock()
		r.st.Trace = ref
		r.mu.Unlock()
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.mu.Lock()
		if r.lost != nil {
			r.mu.Unlock()
			return r.lost
		}
		switch r.st.Phase {
		case PhaseSucceeded:
			r.mu.Unlock()
			return nil
		case PhaseRolledBack:
			reason := r.st.Reason
			r.mu.Unlock()
			return fmt.Errorf("%w: %s", ErrRolledBack, reason)
		case PhaseFailed:
			reason := r.st.Reason
			r.mu.Unlock()
			return fmt.Errorf("%w: %s", ErrRollbackFailed, reason)
		case PhaseRollingBack:
			r.mu.Unlock()
			if err := r.rollback(ctx); err != nil {
				return err
			}
			continue
		case PhasePending:
			r.st.Phase = PhaseRunning
			r.st.StartedAt = r.clock.Now()
			if r.st.Run == 0 {
				r.st.Run = 1
			}
			r.decideLocked(-1, "rollout started (version %s)", orUnknown(r.opts.Version))
			if err := r.saveLocked(ctx); err != nil {
				r.mu.Unlock()
				return err
			}
		}
		if r.st.AbortRequested != "" {
			r.beginRollbackLocked(fmt.Sprintf("aborted by operator: %s", r.st.AbortRequested))
			err := r.saveLocked(ctx)
			r.mu.Unlock()
			if err != nil {
				return err
			}
			continue
		}
		if r.st.Paused {
			ch := r.changed
			r.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return ctx.Err()
			}
			continue
		}
		i := 0
		for i < len(r.st.Steps) && (r.st.Steps[i].Status == StepSucceeded || r.st.Steps[i].Status == StepSkipped) {
			i++
		}
		if i == len(r.st.Steps) {
			err := r.finishLocked(ctx, PhaseSucceeded, "every step succeeded")
			r.mu.Unlock()
			return err
		}
		r.mu.Unlock()
		if err := r.execStep(ctx, i); err != nil {
			return err
		}
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// beginRollbackLocked switches the rollout to rolling back, with reason.
func (r *Rollout) beginRollbackLocked(reason string) {
	r.st.Phase = PhaseRollingBack
	r.st.Reason = reason
	r.decideLocked(-1, "rolling back: %s", reason)
}

// execStep runs step i once. It returns an error only when Run must return
// (context ended, handoff, lost state); a failed step switches the rollout
// to rolling back and returns nil.
func (r *Rollout) execStep(ctx context.Context, i int) error {
	step := r.plan.Steps[i]
	r.mu.Lock()
	s := &r.st.Steps[i]
	if r.st.PromoteFull && skippedByPromoteFull(step.act.kind()) {
		s.Status = StepSkipped
		s.FinishedAt = r.clock.Now()
		r.decideLocked(i, "skipped: promote-full requested by operator")
		r.tel.stepOutcome(ctx, s.Kind, "skipped", 0)
		err := r.saveLocked(ctx)
		r.mu.Unlock()
		return err
	}
	resumed := s.Status == StepRunning
	s.Status = StepRunning
	s.Attempts++
	s.Error = ""
	if s.StartedAt.IsZero() || !resumed {
		s.StartedAt = r.clock.Now()
	}
	s.FinishedAt = time.Time{}
	r.st.Current = i
	if resumed && (s.From == "" || s.From == r.opts.Version) {
		// (A process of another version resuming a handoff step records
		// the takeover instead.)
		r.decideLocked(i, "resuming after a restart (attempt %d, progress %d)", s.Attempts, s.Progress)
	}
	if err := r.saveLocked(ctx); err != nil {
		r.mu.Unlock()
		return err
	}
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	r.stepCancel = cancel
	attempt := s.Attempts
	r.mu.Unlock()
	r.log.Info("rollout step started", "rollout", r.plan.ID, "step", step.Name, "kind", step.act.kind(), "attempt", attempt)

	sctx, endSpan := r.tel.startStep(sctx, step.Name, step.act.kind(), "run")
	runCtx := sctx
	var stop context.CancelFunc = func() {}
	if step.Timeout > 0 {
		runCtx, stop = context.WithTimeoutCause(sctx, step.Timeout, fmt.Errorf("step timed out after %s", step.Timeout))
	}
	x := &stepCtx{r: r, i: i}
	err := step.act.run(runCtx, x)
	if err != nil && runCtx.Err() != nil && ctx.Err() == nil {
		// Report why the context ended (abort, timeout) rather than the
		// bare "context canceled" the consumer returned.
		err = fmt.Errorf("%w (%v)", context.Cause(runCtx), err)
	}
	stop()
	endSpan(err)

	r.mu.Lock()
	defer r.mu.Unlock()
	r.stepCancel = nil
	s = &r.st.Steps[i]
	dur := r.clock.Now().Sub(s.StartedAt)
	switch {
	case errors.Is(err, errHandedOff):
		r.tel.stepOutcome(ctx, s.Kind, "handed-off", dur)
		r.log.Info("rollout handed off", "rollout", r.st.ID, "step", s.Name)
		return ErrHandedOff
	case r.lost != nil:
		return r.lost
	case err == nil:
		s.Status = StepSucceeded
		s.FinishedAt = r.clock.Now()
		s.Waiting = false
		r.tel.stepOutcome(ctx, s.Kind, "succeeded", dur)
		r.log.Info("rollout step succeeded", "rollout", r.st.ID, "step", s.Name, "duration", dur)
		return r.saveLocked(ctx)
	case ctx.Err() != nil && r.st.AbortRequested == "":
		// The caller stopped Run: leave the step running so that the next
		// Run resumes it.
		return ctx.Err()
	default:
		s.Status = StepFailed
		s.FinishedAt = r.clock.Now()
		s.Waiting = false
		s.Error = err.Error()
		r.tel.stepOutcome(ctx, s.Kind, "failed", dur)
		r.log.Warn("rollout step failed", "rollout", r.st.ID, "step", s.Name, "err", err)
		reason := fmt.Sprintf("step %q (%s) failed: %v", s.Name, s.Kind, err)
		if r.st.AbortRequested != "" {
			reason = fmt.Sprintf("aborted by operator during step %q: %s", s.Name, r.st.AbortRequested)
		}
		r.beginRollbackLocked(reason)
		return r.saveLocked(ctx)
	}
}

func skippedByPromoteFull(k Kind) bool { return k == KindPause || k == KindAnalyze }

// rollback undoes completed steps in reverse. It returns nil when the
// rollout reached a final phase (Run then reports it), or the error Run
// must return.
func (r *Rollout) rollback(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		r.mu.Lock()
		j := -1
		for k := len(r.st.Steps) - 1; k >= 0; k-- {
			st := r.st.Steps[k].Status
			if st == StepSucceeded && r.st.Steps[k].Irreversible {
				if r.st.Steps[k].RollbackStartedAt.IsZero() {
					r.st.Steps[k].RollbackStartedAt = r.clock.Now()
					r.decideLocked(k, "not rolled back: the step is irreversible; rollback stops here and earlier steps stay applied")
				}
				break
			}
			if st == StepSucceeded || st == StepFailed || st == StepRollingBack || st == StepRollbackFailed || st == StepRunning {
				j = k
				break
			}
		}
		if j < 0 {
			err := r.finishLocked(ctx, PhaseRolledBack, "rollback complete")
			r.mu.Unlock()
			return err
		}
		step := r.plan.Steps[j]
		s := &r.st.Steps[j]
		resumed := s.Status == StepRollingBack
		s.Status = StepRollingBack
		if !resumed {
			s.RollbackStartedAt = r.clock.Now()
		}
		r.st.Current = j
		if err := r.saveLocked(ctx); err != nil {
			r.mu.Unlock()
			return err
		}
		r.mu.Unlock()

		sctx, endSpan := r.tel.startStep(ctx, step.Name, step.act.kind(), "rollback")
		runCtx := sctx
		var stop context.CancelFunc = func() {}
		if step.Timeout > 0 {
			runCtx, stop = context.WithTimeoutCause(sctx, step.Timeout, fmt.Errorf("rollback timed out after %s", step.Timeout))
		}
		err := step.act.undo(runCtx, &stepCtx{r: r, i: j, undoing: true})
		stop()
		endSpan(err)

		r.mu.Lock()
		s = &r.st.Steps[j]
		switch {
		case errors.Is(err, errHandedOff):
			r.tel.stepOutcome(ctx, s.Kind, "rollback-handed-off", 0)
			r.mu.Unlock()
			return ErrHandedOff
		case r.lost != nil:
			r.mu.Unlock()
			return r.lost
		case err == nil:
			s.Status = StepRolledBack
			s.RollbackFinishedAt = r.clock.Now()
			r.tel.stepOutcome(ctx, s.Kind, "rolled-back", s.RollbackFinishedAt.Sub(s.RollbackStartedAt))
			err = r.saveLocked(ctx)
			r.mu.Unlock()
			if err != nil {
				return err
			}
		case ctx.Err() != nil:
			r.mu.Unlock()
			return ctx.Err()
		default:
			s.Status = StepRollbackFailed
			s.RollbackFinishedAt = r.clock.Now()
			s.Error = err.Error()
			r.st.Phase = PhaseFailed
			r.st.Reason = fmt.Sprintf("%s; then the rollback of step %q (%s) failed: %v", r.st.Reason, s.Name, s.Kind, err)
			r.decideLocked(j, "rollback failed: %v; the rollout stops here and needs an operator (retry retries the rollback)", err)
			r.tel.stepOutcome(ctx, s.Kind, "rollback-failed", 0)
			err = r.saveLocked(ctx)
			r.mu.Unlock()
			return err
		}
	}
}

// Drive runs the rollout like Run and, each time it ends (succeeded,
// rolled back or failed), waits for an operator's Retry and runs it again.
// It suits a long-lived service whose admin API offers retry. It returns
// ctx.Err() when ctx ends, ErrHandedOff when another process took the
// drive, or the error that stopped a Run for another cause (a lost state,
// a store failure).
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
