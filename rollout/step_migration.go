package rollout

import (
	"context"
	"errors"
	"fmt"
)

// MigrationPhase is a phase of an expand-contract migration. The zero
// value is invalid.
type MigrationPhase string

// Migration phases, in order.
const (
	MigrationStart       MigrationPhase = "start" // expand
	MigrationBackfill    MigrationPhase = "backfill"
	MigrationSwitchReads MigrationPhase = "switch-reads"
	MigrationComplete    MigrationPhase = "complete" // contract: irreversible
)

// Migration is a step that runs one phase of migration name. Complete is
// irreversible; the rollback of every other phase calls Rollback (which
// must be idempotent: it may be called once per rolled-back phase).
func Migration(m MigrationPhaser, name string, phase MigrationPhase) Step {
	return Step{act: &migrationAction{m: m, name: name, phase: phase}}
}

type migrationAction struct {
	m     MigrationPhaser
	name  string
	phase MigrationPhase
}

func (a *migrationAction) kind() Kind         { return KindMigration }
func (a *migrationAction) irreversible() bool { return a.phase == MigrationComplete }
func (a *migrationAction) defaultName() string {
	return fmt.Sprintf("migration-%s-%s", a.name, a.phase)
}
func (a *migrationAction) describe() string {
	return fmt.Sprintf("migration %q: %s", a.name, a.phase)
}

func (a *migrationAction) validate() error {
	if a.m == nil {
		return errors.New("nil MigrationPhaser")
	}
	if a.name == "" {
		return errors.New("empty migration name")
	}
	switch a.phase {
	case MigrationStart, MigrationBackfill, MigrationSwitchReads, MigrationComplete:
		return nil
	}
	return fmt.Errorf("unknown migration phase %q (want %s, %s, %s or %s)", a.phase, MigrationStart, MigrationBackfill, MigrationSwitchReads, MigrationComplete)
}

func (a *migrationAction) run(ctx context.Context, x *stepCtx) error {
	var err error
	switch a.phase {
	case MigrationStart:
		err = a.m.Start(ctx, a.name)
	case MigrationBackfill:
		err = a.m.Backfill(ctx, a.name)
	case MigrationSwitchReads:
		err = a.m.SwitchReads(ctx, a.name)
	case MigrationComplete:
		err = a.m.Complete(ctx, a.name)
	}
	if err != nil {
		return fmt.Errorf("migration %q %s: %w", a.name, a.phase, err)
	}
	return x.decide(ctx, "migration %q: %s done", a.name, a.phase)
}

func (a *migrationAction) undo(ctx context.Context, x *stepCtx) error {
	if err := a.m.Rollback(ctx, a.name); err != nil {
		return fmt.Errorf("migration %q rollback: %w", a.name, err)
	}
	return x.decide(ctx, "migration %q rolled back (undoing %s)", a.name, a.phase)
}
