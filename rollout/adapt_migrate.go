package rollout

import (
	"context"
	"errors"
	"fmt"

	"github.com/batonhq/baton/migrate"
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
		return nil, fmt.Errorf("rollout: no migrate.Runner for migration %q", name)
	}
	return r, nil
}

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

// Rollback undoes every phase before Complete.
func (m MigrateRunners) Rollback(ctx context.Context, name string) error {
	r, err := m.runner(name)
	if err != nil {
		return err
	}
	return r.Rollback(ctx)
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
		return 0, errors.New("rollout: MigrateRegistry has no Runner")
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
	_ MigrationPhaser  = MigrateRunners(nil)
	_ InstanceRegistry = MigrateRegistry{}
)
