// Package gracefultest provides an in-memory stand-in for graceful's
// Upgrader, for tests of code that triggers upgrades (rollout steps, admin
// endpoints) without starting processes.
package gracefultest

import (
	"context"
	"sync"

	"github.com/batonhq/baton/graceful"
)

// Upgrader records Upgrade calls and answers them from a script. It has
// Upgrade and State with the signatures of *graceful.Upgrader. The zero
// value is ready and every Upgrade succeeds.
type Upgrader struct {
	mu    sync.Mutex
	errs  []error
	calls int
	state graceful.State
	set   bool
}

// Script makes successive Upgrade calls return errs in order (a nil entry
// succeeds); once exhausted, Upgrade succeeds.
func (u *Upgrader) Script(errs ...error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.errs = append(u.errs, errs...)
}

// Upgrade returns ctx.Err() if ctx is done (not counted as a call),
// otherwise the next scripted result.
func (u *Upgrader) Upgrade(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls++
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

// Calls returns how many Upgrade calls were answered.
func (u *Upgrader) Calls() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls
}
