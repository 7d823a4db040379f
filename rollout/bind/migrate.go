package bind

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/rollout"
)

// MigrateRunners drives migration steps with migrate's Runners, one per
// migration, keyed by the migration name the steps use: Start, Backfill,
// SwitchReads, Complete and Rollback are the Runner's methods, which are
// idempotent and resumable as the rollout's at-least-once steps require
// (Rollback after a rollback, or before anything ran, does nothing).
// A nil or empty map fails every call with the unknown name.
type MigrateRunners map[string]*migrate.Runner

func (m MigrateRunners) runner(name string) (*migrate.Runner, error) {
	r := m[name]
	if r == nil {
		return nil, fmt.Errorf("bind: no migrate.Runner for migration %q", name)
	}
	return r, nil
}

// Knows reports whether m has a Runner for migration name; a release that
// names an unknown migration is refused when it is bound.
func (m MigrateRunners) Knows(name string) bool { return m[name] != nil }

// Start runs the expand phase.
func (m MigrateRunners) Start(ctx context.Context, name string) error {
	r, err := m.runner(name)
	if err != nil {
		return err
	}
	return r.Start(ctx)
}

// Backfill fills the new columns of existing rows.
func (m MigrateRunners) Backfill(ctx context.Context, name string) error {
	r, err := m.runner(name)
	if err != nil {
		return err
	}
	return r.Backfill(ctx)
}

// SwitchReads records that applications read the new columns.
func (m MigrateRunners) SwitchReads(ctx context.Context, name string) error {
	r, err := m.runner(name)
	if err != nil {
		return err
	}
	return r.SwitchReads(ctx)
}

// Complete contracts (irreversible). It fails with migrate's
// *OldVersionsError while an instance of an older version heartbeats.
func (m MigrateRunners) Complete(ctx context.Context, name string) error {
	r, err := m.runner(name)
	if err != nil {
		return err
	}
	return r.Complete(ctx)
}

// RollbackPoll is how often Rollback asks again while instances of the new
// version are still registered.
const RollbackPoll = 200 * time.Millisecond

// Rollback undoes every phase before Complete. migrate refuses to drop the
// new columns while an instance of the new version heartbeats, since its
// requests still use them; in a rollout that instance is usually the new
// process that has just given serving back and is draining. Rollback
// therefore waits for such instances to leave (they deregister when they
// exit, or fall out of the registry's TTL), asking again every
// RollbackPoll, for as long as ctx allows: bound it with the step's
// timeout. Giving up returns migrate's refusal together with ctx's error.
func (m MigrateRunners) Rollback(ctx context.Context, name string) error {
	r, err := m.runner(name)
	if err != nil {
		return err
	}
	for {
		err := r.Rollback(ctx)
		if !errors.Is(err, migrate.ErrNewVersionsAlive) {
			return err
		}
		t := time.NewTimer(RollbackPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up waiting for them: %w)", err, ctx.Err())
		case <-t.C:
		}
	}
}

// MigrateRegistry answers wait-old-gone steps from migrate's instance
// registry (instances that called migrate.Register and still heartbeat
// within the runner's InstanceTTL). The zero value (nil Runner) fails
// every call.
type MigrateRegistry struct {
	Runner *migrate.Runner
}

// OldVersionsAlive counts the live instances whose version is not current.
func (m MigrateRegistry) OldVersionsAlive(ctx context.Context, current string) (int, error) {
	if m.Runner == nil {
		return 0, errors.New("bind: MigrateRegistry has no Runner")
	}
	live, err := m.Runner.LiveInstances(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, in := range live {
		if in.Version != current {
			n++
		}
	}
	return n, nil
}

var (
	_ rollout.MigrationPhaser  = MigrateRunners(nil)
	_ rollout.InstanceRegistry = MigrateRegistry{}
)
