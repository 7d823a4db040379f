// Package gracefultest provides an in-memory stand-in for graceful's
// Upgrader, for tests of code that triggers upgrades (an admin endpoint, an
// orchestrator's upgrade step) without starting processes.
package gracefultest

import (
	"context"
	"sync"

	"github.com/batonhq/baton/graceful"
)

// Upgrader records Upgrade and UpgradeWith calls and answers them from a
// script. It has Upgrade, UpgradeWith and State with the signatures of
// [graceful.Upgrader]. The zero value is ready and every upgrade succeeds.
type Upgrader struct {
	mu    sync.Mutex
	errs  []error
	calls []graceful.UpgradeOptions
	state graceful.State
	set   bool
}

// Script makes successive upgrade calls return errs in order (a nil entry
// succeeds); once exhausted, they succeed.
func (u *Upgrader) Script(errs ...error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.errs = append(u.errs, errs...)
}

// Upgrade is UpgradeWith with zero options.
func (u *Upgrader) Upgrade(ctx context.Context) error {
	return u.UpgradeWith(ctx, graceful.UpgradeOptions{})
}

// UpgradeWith returns ctx.Err() if ctx is done (not counted as a call),
// otherwise records o and returns the next scripted result.
func (u *Upgrader) UpgradeWith(ctx context.Context, o graceful.UpgradeOptions) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, o)
	if len(u.errs) == 0 {
		return nil
	}
	err := u.errs[0]
	u.errs = u.errs[1:]
	return err
}

// State returns the state set by SetState, StateReady until then.
func (u *Upgrader) State() graceful.State {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !u.set {
		return graceful.StateReady
	}
	return u.state
}

// SetState sets what State returns.
func (u *Upgrader) SetState(s graceful.State) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.state, u.set = s, true
}

// Calls returns how many upgrade calls were answered.
func (u *Upgrader) Calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.calls)
}

// Options returns the UpgradeOptions of every answered call, in order
// (zero options for Upgrade).
func (u *Upgrader) Options() []graceful.UpgradeOptions {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]graceful.UpgradeOptions(nil), u.calls...)
}
