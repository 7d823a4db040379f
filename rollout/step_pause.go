package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Pause is a step that waits for d, or until an operator promotes when d
// is 0. A resumed pause waits only for what was left. Nothing to roll back.
func Pause(d time.Duration) Step { return Step{act: &pauseAction{d: d}} }

// PauseUntilPromoted is Pause(0).
func PauseUntilPromoted() Step { return Pause(0) }

type pauseAction struct{ d time.Duration }

func (a *pauseAction) kind() Kind         { return KindPause }
func (a *pauseAction) irreversible() bool { return false }
func (a *pauseAction) defaultName() string {
	if a.d == 0 {
		return "pause-until-promoted"
	}
	return "pause-" + a.d.String()
}

func (a *pauseAction) describe() string {
	if a.d == 0 {
		return "pause until promoted"
	}
	return fmt.Sprintf("pause for %s", a.d)
}

func (a *pauseAction) validate() error {
	if a.d < 0 {
		return errors.New("negative pause")
	}
	return nil
}

func (a *pauseAction) run(ctx context.Context, x *stepCtx) error {
	var deadline time.Time
	if a.d > 0 {
		start, err := x.waitStart(ctx)
		if err != nil {
			return err
		}
		deadline = start.Add(a.d)
	}
	promoted, err := x.waitUntil(ctx, deadline)
	if err != nil {
		return err
	}
	if promoted {
		return x.decide(ctx, "pause ended by operator promote")
	}
	return x.decide(ctx, "pause of %s elapsed", a.d)
}

func (a *pauseAction) undo(ctx context.Context, x *stepCtx) error { return nil }
