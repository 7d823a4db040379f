package rollout

import (
	"context"
	"time"
)

// The interfaces below are what rollout needs from graceful, canary, flags,
// migrate and the platform. They are declared here, on the consumer side,
// so that each package satisfies them with a thin adapter and none of them
// imports another. Every method may be called again after a crash (the
// runner is at-least-once for a step that was running when the process
// died, since the effect and the record of its completion cannot be one
// atomic write), so implementations must be idempotent: setting the same
// weight, percentage or phase twice is the same as once. A step recorded
// as completed is never run again.

// Upgrader replaces the running binary by a new one (with graceful: a socket
// handoff). Upgrade returns nil once the new process is ready to serve; from
// then on the new process drives the rollout (see ErrHandedOff). If the old
// process dies inside Upgrade, a fresh old process may call it again: an
// upgrade to the version already being started must not start a second
// one.
type Upgrader interface {
	Upgrade(ctx context.Context) error
}

// UpgradeSpec is what an upgrade step knows of the upgrade it asks for:
// the version, the release's binary and how long the old process must
// stay warm. The zero value asks for no binary and no bake.
type UpgradeSpec struct {
	// Version is the version the new process runs.
	Version string
	// Binary is the path of the new version's executable (the release's
	// binary); empty means whatever the Upgrader runs by default.
	Binary string
	// Bake is how long the old process must stay a fallback: the
	// rollout's bake window plus one analysis interval, zero for a plain
	// upgrade.
	Bake time.Duration
}

// SpecUpgrader is an optional interface of an Upgrader that takes the
// binary and bake window per upgrade (a release installs its own binary;
// a blue-green bake sets its own window). An upgrade step calls UpgradeTo
// instead of Upgrade when the Upgrader has it.
type SpecUpgrader interface {
	UpgradeTo(ctx context.Context, spec UpgradeSpec) error
}

// BakeController is the optional blue-green half of an Upgrader: during the
// bake window the old process stays warm. It is called in the new process.
// Promote ends the bake (the old process exits); Rollback gives traffic back
// to the old process, which resumes, and makes this one leave. Both may be
// called again after a crash of the new process and must be idempotent.
type BakeController interface {
	Promote(ctx context.Context) error
	Rollback(ctx context.Context) error
}

// Downgrader is an optional interface of an Upgrader used to roll back a
// plain (non blue-green) upgrade step: it hands over to the previous binary.
// Without it an upgrade step is irreversible. Downgrade may be called again
// after a crash during the rollback and must be idempotent.
type Downgrader interface {
	Downgrade(ctx context.Context) error
}

// MaxWeight is the largest canary weight: 10000 basis points, 100%.
const MaxWeight uint32 = 10000

// WeightSetter sets the share of traffic sent to the canary, in basis points
// (0..MaxWeight; 100 = 1%). Setting a weight is idempotent by nature; keep
// it so (no relative changes). The runner records the weight in
// Status.Weight before it calls SetWeight, so that a process of the
// release's version that starts later applies it (Rollout.Restore).
type WeightSetter interface {
	SetWeight(ctx context.Context, weight uint32) error
}

// RecordWeight is the WeightSetter of a process that does not run the
// canary a weight is meant for: the old side of an upgrade, whose binary
// has no splitter for the new version. It does nothing; the weight lives in
// Status.Weight until the process of the release's version applies it with
// Rollout.Restore when it starts. A set-weight step before a BlueGreen
// step so sets the weight the new process starts with.
var RecordWeight WeightSetter = recordWeight{}

type recordWeight struct{}

func (recordWeight) SetWeight(context.Context, uint32) error { return nil }

// Verdict is the outcome of one analysis. The zero value is Inconclusive.
type Verdict int

// Verdicts.
const (
	Inconclusive Verdict = iota
	Pass
	Fail
)

// String returns "pass", "fail" or "inconclusive" (also for unknown
// values).
func (v Verdict) String() string {
	switch v {
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	default:
		return "inconclusive"
	}
}

// Analyzer judges the new version (canary against stable, an SLO query, a
// user check). reason is recorded as the decision's reason; err means the
// analysis itself could not run and counts as Inconclusive. A measurement
// interrupted by a crash is taken again; it must have no side effect that a
// repetition would double.
type Analyzer interface {
	Analyze(ctx context.Context) (v Verdict, reason string, err error)
}

// AnalyzerFunc adapts a function to Analyzer. A nil AnalyzerFunc is not
// valid.
type AnalyzerFunc func(ctx context.Context) (Verdict, string, error)

// Analyze calls f.
func (f AnalyzerFunc) Analyze(ctx context.Context) (Verdict, string, error) { return f(ctx) }

// LookPlanner is an optional interface of an Analyzer whose statistics
// spend an error budget over a planned number of looks (alpha spending, as
// canary's analyzer does): New calls PlanLooks with the number of times
// the plan calls the analyzer in a full run (every measurement of its
// Analyze steps, every bake round, every ramp percentage), so nobody
// counts them by hand. It is called once per New, before any Analyze.
type LookPlanner interface {
	PlanLooks(n int)
}

// FlagRamper sets the percentage (0..100) of a flag's sticky rollout, and
// turns it off on rollback. Both are absolute settings and must stay
// idempotent: a percentage interrupted by a crash is set again.
type FlagRamper interface {
	SetPercent(ctx context.Context, flagKey string, percent float64) error
	Disable(ctx context.Context, flagKey string) error
}

// MigrationPhaser drives one expand-contract migration by name. Complete
// (contract: drop the old column) is irreversible; Rollback undoes every
// phase before Complete.
//
// Every method must be idempotent: a phase whose process died after its
// effect but before the rollout recorded it is called again, and Rollback
// is called once per rolled-back phase. This matters most for Complete: a
// second Complete after a successful one must return nil without touching
// the schema (migrate's Runner does: each phase returns nil when the
// migration is already past it).
type MigrationPhaser interface {
	Start(ctx context.Context, name string) error
	Backfill(ctx context.Context, name string) error
	SwitchReads(ctx context.Context, name string) error
	Complete(ctx context.Context, name string) error
	Rollback(ctx context.Context, name string) error
}

// InstanceRegistry knows which instances are alive and which version they
// run. OldVersionsAlive returns how many live instances run a version other
// than current. It only reads, so a repeated call is harmless.
type InstanceRegistry interface {
	OldVersionsAlive(ctx context.Context, current string) (int, error)
}

// Target is one instance of a Rolling update: a local process, a VM, a
// container, anything that can be replaced by a version and health-checked.
// Healthy returns nil when the instance serves. Replace must be idempotent:
// a batch interrupted by a crash replaces its instances again, so
// replacing an instance that already runs version with version must leave
// one instance of it (ProcessTarget adopts or stops the process a previous
// runner started, given a StateDir).
type Target interface {
	Name() string
	Replace(ctx context.Context, version string) error
	Healthy(ctx context.Context) error
}

// Surger is the optional pool side of a Rolling update with MaxSurge > 0: it
// starts extra instances of the new version before old ones are replaced,
// and stops them once the batch is healthy. A batch interrupted by a crash
// starts its extras again; the extras of the dead runner are the Surger's
// to reap.
type Surger interface {
	StartExtra(ctx context.Context, version string) (Target, error)
	StopExtra(ctx context.Context, t Target) error
}
