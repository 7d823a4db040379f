package rollout

import "context"

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

// WeightSetter sets the share of traffic sent to the canary, in basis points
// (0..10000; 100 = 1%). Setting a weight is idempotent by nature; keep it
// so (no relative changes).
type WeightSetter interface {
	SetWeight(ctx context.Context, basisPoints int) error
}

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

// FlagRamper sets the percentage (0..100) of a flag's sticky rollout, and
// turns it off on rollback. Both are absolute settings and must stay
// idempotent: a percentage interrupted by a crash is set again.
type FlagRamper interface {
	SetPercentage(ctx context.Context, flagKey string, pct float64) error
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
