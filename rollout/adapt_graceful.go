package rollout

import (
	"context"
	"sync"

	"github.com/batonhq/baton/graceful"
)

// GracefulUpgrader drives upgrade and blue-green steps with a
// *graceful.Upgrader: Upgrade is a socket handoff to whatever binary stands
// at the Upgrader's executable path; Promote and Rollback run in the new
// process during the bake window and end it through graceful's Promote
// (the old process drains and exits) and Rollback (the old process
// resumes, this one drains and finishes). Give graceful a BakeWindow longer
// than the rollout's bake window plus its analyses, so that the old
// process is still a fallback when Rollback is called. The zero value is
// not usable: use NewGracefulUpgrader.
//
// After Run returns ErrHandedOff, call AwaitDrive: in an old process that
// got serving back, build a new Rollout from the Store (the new process
// wrote the state meanwhile) and Run it, which finishes the rollback.
type GracefulUpgrader struct {
	u *graceful.Upgrader

	mu      sync.Mutex
	resumed <-chan struct{} // taken before the latest handoff
}

// NewGracefulUpgrader adapts u.
func NewGracefulUpgrader(u *graceful.Upgrader) *GracefulUpgrader {
	return &GracefulUpgrader{u: u, resumed: u.Resumed()}
}

// Upgrade hands the listeners to a new process and returns once it is
// ready (graceful.Upgrader.Upgrade).
func (g *GracefulUpgrader) Upgrade(ctx context.Context) error {
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
func (g *GracefulUpgrader) Promote(ctx context.Context) error { return g.u.Promote(ctx) }

// Rollback gives serving back to the baking predecessor, which resumes,
// and drains this process (graceful Rollback). It fails, wrapping
// graceful.ErrNoFallback, when the predecessor no longer bakes.
func (g *GracefulUpgrader) Rollback(ctx context.Context) error { return g.u.Rollback(ctx) }

// AwaitDrive waits, after this process handed the drive away, until it
// either took serving back from its successor (true: run the rollout
// again, from a new Rollout) or finished serving (false: the successor
// stays; exit). It returns ctx.Err() if ctx ends first.
func (g *GracefulUpgrader) AwaitDrive(ctx context.Context) (resumed bool, err error) {
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
	_ Upgrader       = (*GracefulUpgrader)(nil)
	_ BakeController = (*GracefulUpgrader)(nil)
)
