package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultPollInterval is how often WaitOldGone asks the registry.
const DefaultPollInterval = 5 * time.Second

// WaitOldGone is a step that waits until reg reports no live instance of
// a version other than current, polling every poll (zero means
// DefaultPollInterval). Registry errors are recorded and retried until the
// step's Timeout. Promote does not end it: contracting while old code runs
// is what it guards against. Nothing to roll back.
func WaitOldGone(reg InstanceRegistry, current string, poll time.Duration) Step {
	if poll == 0 {
		poll = DefaultPollInterval
	}
	return Step{act: &waitOldAction{reg: reg, current: current, poll: poll}}
}

type waitOldAction struct {
	reg     InstanceRegistry
	current string
	poll    time.Duration
}

func (a *waitOldAction) kind() Kind          { return KindWaitOldGone }
func (a *waitOldAction) defaultName() string { return "wait-old-gone-" + a.current }
func (a *waitOldAction) irreversible() bool  { return false }
func (a *waitOldAction) describe() string {
	return fmt.Sprintf("wait until no instance older than %s is alive", a.current)
}

func (a *waitOldAction) validate() error {
	if a.reg == nil {
		return errors.New("nil InstanceRegistry")
	}
	if a.current == "" {
		return errors.New("empty current version")
	}
	if a.poll < 0 {
		return errors.New("negative poll interval")
	}
	return nil
}

func (a *waitOldAction) run(ctx context.Context, x *stepCtx) error {
	last := -2
	for {
		n, err := a.reg.OldVersionsAlive(ctx, a.current)
		switch {
		case err != nil && ctx.Err() != nil:
			return context.Cause(ctx)
		case err != nil:
			if err := x.decide(ctx, "instance registry error, retrying: %v", err); err != nil {
				return err
			}
			last = -1
		case n == 0:
			return x.decide(ctx, "no instance of an older version is alive")
		case n != last:
			if err := x.decide(ctx, "%d instance(s) of older versions still alive: waiting", n); err != nil {
				return err
			}
			last = n
		}
		select {
		case <-x.r.clock.After(a.poll):
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

func (a *waitOldAction) undo(ctx context.Context, x *stepCtx) error { return nil }
