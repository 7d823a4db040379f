package fleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/batonhq/baton/rollout"
)

// RolloutOptions configure DriveRollout. Plan is required (the zero value
// is refused); the other zero fields mean rollout's defaults and no callback.
type RolloutOptions struct {
	// Plan builds the plan each time this member takes the lead: the same
	// plan in every member, as rollout requires. It may close over the
	// Lead to fence its own writes (desired state, shared documents).
	Plan func(l *Lead) (rollout.Plan, error)
	// Rollout are the options of every rollout.New; Store is replaced by
	// the Lead's fenced Store.
	Rollout rollout.Options
	// Started, if set, is called with each Rollout the lead drives (for a
	// local admin API, say); the Rollout is dead once the lead is lost.
	Started func(*rollout.Rollout)
}

// DriveRollout returns a Drive function for DriverOptions that drives one
// rollout from its stored state while this member leads, and applies the
// operator commands sent to it from any member. A plan this member cannot
// build or drive (an error from Plan, rollout.ErrInvalidPlan,
// rollout.ErrPlanChanged) and a handoff to another process
// (rollout.ErrHandedOff) make it step down (ErrStepDown): Driver.Run
// returns, and another member drives.
//
// While the member is stale (the engine does not answer) it stops driving:
// the running step's context is cancelled and nothing more is written; when
// the engine answers again it loads the stored state and resumes from it.
// A step interrupted this way runs again, as after a crash (rollout's
// at-least-once guarantee for an interrupted step).
func DriveRollout(o RolloutOptions) (func(ctx context.Context, l *Lead) error, error) {
	if o.Plan == nil {
		return nil, errors.New("fleet: DriveRollout: RolloutOptions.Plan is required")
	}
	return func(ctx context.Context, l *Lead) error { return driveRollout(ctx, l, o) }, nil
}

func driveRollout(ctx context.Context, l *Lead, o RolloutOptions) error {
	m := l.d.m
	backoff := 100 * time.Millisecond
	for {
		if err := m.AwaitFresh(ctx); err != nil {
			return err
		}
		plan, err := o.Plan(l)
		if err != nil {
			return fmt.Errorf("%w: building the plan: %w", ErrStepDown, err)
		}
		ro := o.Rollout
		ro.Store = l.Store()
		started := time.Now()
		r, err := rollout.New(ctx, plan, ro)
		if err == nil {
			if o.Started != nil {
				o.Started(r)
			}
			err = runWhileFresh(ctx, l, plan.ID, r)
		}
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, ErrFenced):
			return err
		case errors.Is(err, rollout.ErrHandedOff):
			return fmt.Errorf("%w: %w", ErrStepDown, err)
		case errors.Is(err, rollout.ErrInvalidPlan), errors.Is(err, rollout.ErrPlanChanged):
			// This member cannot drive this rollout: let another one.
			return fmt.Errorf("%w: %w", ErrStepDown, err)
		case errors.Is(err, rollout.ErrConflict):
			// Not fenced: a writer outside the fleet changed the state.
			// Load it again and go on from there.
			m.log.Warn("fleet: the rollout's state was changed by another writer; loading it again", "rollout", plan.ID, "err", err, "retry_in", backoff)
		default:
			m.log.Warn("fleet: rollout paused: the engine is in trouble; it resumes from the stored state when the engine answers", "rollout", plan.ID, "err", err, "retry_in", backoff)
		}
		if time.Since(started) > m.o.LeaseTTL {
			backoff = 100 * time.Millisecond // it drove for a while: a new trouble
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		backoff = min(2*backoff, m.o.LeaseTTL)
	}
}

// errStale cancels a drive when the member goes stale.
var errStale = errors.New("fleet: the engine is unreachable")

// runWhileFresh drives r and serves its commands until ctx ends, the drive
// stops, or the member goes stale.
func runWhileFresh(ctx context.Context, l *Lead, id string, r *rollout.Rollout) error {
	m := l.d.m
	cctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			h, ch := m.health.get()
			if h.Stale() {
				cancel(errStale)
				return
			}
			select {
			case <-ch:
			case <-cctx.Done():
				return
			}
		}
	}()
	cmds := make(chan struct{})
	go func() {
		defer close(cmds)
		l.serveCommands(cctx, id, r)
	}()
	views := make(chan struct{})
	go func() {
		defer close(views)
		l.publishViews(cctx, r)
	}()
	err := r.Drive(cctx)
	cancel(nil)
	<-done
	<-cmds
	<-views
	if errors.Is(context.Cause(cctx), errStale) && ctx.Err() == nil {
		return errStale
	}
	return err
}
