package bind

import (
	"context"
	"sync"

	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/rollout"
)

// Upgrader drives upgrade and blue-green steps with a *graceful.Upgrader:
// Upgrade is a socket handoff to whatever binary stands at the Upgrader's
// executable path; Promote and Rollback run in the new process during the
// bake window and end it through graceful's Promote (the old process
// drains and exits) and Rollback (the old process resumes, this one drains
// and finishes). Give graceful a BakeWindow longer than the rollout's bake
// window plus one analysis interval, so that the old process is still a
// fallback when Rollback is called. The zero value is not usable: use
// NewUpgrader.
//
// After Run returns rollout.ErrHandedOff, call AwaitDrive: in an old
// process that got serving back, build a new Rollout from the Store (the
// new process wrote the state meanwhile) and Run it, which finishes the
// rollback (rollout.Driver does all of this).
type Upgrader struct {
	u *graceful.Upgrader

	mu      sync.Mutex
	resumed <-chan struct{} // taken before the latest handoff
}

// NewUpgrader adapts u.
func NewUpgrader(u *graceful.Upgrader) *Upgrader {
	return &Upgrader{u: u, resumed: u.Resumed()}
}

// Upgrade hands the listeners to a new process and returns once it is
// ready (graceful.Upgrader.Upgrade).
func (g *Upgrader) Upgrade(ctx context.Context) error {
	// Taken before the handoff so that a resume racing with the return
	// of Upgrade is not missed.
	ch := g.u.Resumed()
	g.mu.Lock()
	g.resumed = ch
	g.mu.Unlock()
	return g.u.Upgrade(ctx)
}

// Promote ends the predecessor's bake window now (graceful Promote). It
// is idempotent: with no baking predecessor it does nothing.
func (g *Upgrader) Promote(ctx context.Context) error { return g.u.Promote(ctx) }

// Rollback gives serving back to the baking predecessor, which resumes,
// and drains this process (graceful Rollback). It fails, wrapping
// graceful.ErrNoFallback, when the predecessor no longer bakes.
func (g *Upgrader) Rollback(ctx context.Context) error { return g.u.Rollback(ctx) }

// AwaitDrive waits, after this process handed the drive away, until it
// either took serving back from its successor (true: run the rollout
// again, from a new Rollout) or finished serving (false: the successor
// stays; exit). It returns ctx.Err() if ctx ends first.
func (g *Upgrader) AwaitDrive(ctx context.Context) (resumed bool, err error) {
	g.mu.Lock()
	ch := g.resumed
	g.mu.Unlock()
	select {
	case <-ch:
		return true, nil
	case <-g.u.Done():
		// A resume and the end of serving cannot both happen; prefer
		// the resume if both channels are ready.
		select {
		case <-ch:
			return true, nil
		default:
		}
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

var (
	_ rollout.Upgrader       = (*Upgrader)(nil)
	_ rollout.BakeController = (*Upgrader)(nil)
)
