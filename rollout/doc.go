// Package rollout runs a deployment strategy end to end inside the service,
// with no control plane: a Plan of steps (upgrade the binary, blue-green
// with a bake window, set the canary weight, pause, analyse, ramp a flag,
// run a migration phase, wait until old versions are gone, call a hook,
// replace a batch of instances) executed by a Rollout that persists its
// state after every transition, rolls back automatically, and takes
// operator commands through an admin HTTP API.
//
// # Lifecycle
//
// Build the same Plan in every process that may drive it (old and new
// binary alike: funcs and interfaces live in the Plan, the Store keeps only
// names, statuses, progress and decisions), then:
//
//	r, err := rollout.New(ctx, plan, rollout.Options{Store: store, Version: "v2"})
//	go rollout.ServeAdmin(ln, rollout.NewHandler(r, rollout.HandlerOptions{}))
//	err = r.Run(ctx) // or r.Drive(ctx): Run again after each operator retry
//
// Run returns nil when every step succeeded; an error wrapping
// ErrRolledBack after a failure or an abort was rolled back;
// ErrRollbackFailed when a rollback action failed (Retry retries it);
// ErrHandedOff when another process took the drive (see Upgrades);
// ctx.Err() when ctx ends, leaving the rollout resumable.
//
// Steps talk to the rest of baton through small interfaces declared here
// (Upgrader, BakeController, Downgrader, WeightSetter, Analyzer,
// FlagRamper, MigrationPhaser, InstanceRegistry, Target, Surger): graceful,
// canary, flags and migrate satisfy them with thin adapters, and
// rollouttest has fakes of each.
//
// # Adapters
//
// The concrete packages plug in through adapters in this package (it
// imports graceful, canary, flags and migrate, none of which imports
// another; no database driver or SDK comes with them):
//
//   - NewGracefulUpgrader(*graceful.Upgrader): Upgrader and BakeController
//     (Promote and Rollback are graceful's own), and
//     AwaitDrive for the process that handed the drive away.
//   - CanaryWeights{Splitter, StateFile} (WeightSetter; with StateFile the
//     weight survives a restart or upgrade through Restore) and
//     CanaryAnalyzer{Splitter, Analyzer} (Analyzer: canary's
//     pass/fail/insufficient become Pass/Fail/Inconclusive, with canary's
//     reason).
//   - NewFlagStore(FlagStoreOptions{Store, StateFile}): FlagRamper that
//     writes each ramp to a state file before applying it and re-applies
//     the file at start, because a flags.Store's run-time changes die with
//     its process (an upgrade, a crash).
//   - MigrateRunners{name: *migrate.Runner} (MigrationPhaser) and
//     MigrateRegistry{Runner} (InstanceRegistry over migrate's heartbeat
//     registry).
//
// examples/demo wires all of them into one service (and is the test of
// the whole: go run ./examples/demo).
//
// # Guarantees
//
//   - Every transition (step started, progress unit done, decision, step
//     finished, command accepted) is written to the Store before it takes
//     effect on the next step. The FileStore replaces its file atomically
//     (temp file, fsync, rename, directory fsync); SQLStore writes one row.
//   - Writes are compare-and-swap on a revision: two runners of one rollout
//     never overwrite each other; the one that loses stops with ErrConflict.
//   - A step is recorded running before its effect and complete after it;
//     the two cannot be one atomic write with the effect. So effects are
//     at-least-once, not exactly-once: a step recorded complete is never
//     run again on resume (Retry is the operator's explicit exception, see
//     Known limits), but a step (or rollback action) that was running when
//     the process died runs again, its consumer call included, even if
//     that call had already taken effect. Consumer methods must therefore
//     be idempotent (each interface says so; MigrationPhaser.Complete
//     most of all, and migrate's Runner is). Multi-unit steps (ramps,
//     rolling batches, analyses, bake windows, timed pauses) resume from
//     their persisted progress and remaining time, so only the interrupted
//     unit is repeated. The kill -9 tests check this for every step kind,
//     killing the runner both before a step's effect (the effects after
//     the resume equal an uninterrupted rollout's) and after it, before
//     its completion is saved (the same, plus that one effect once more).
//   - A failing step, a failed analysis or Abort rolls back the completed
//     steps in reverse: weight to 0, flag disabled, migration rolled back,
//     instances replaced by the previous version, old process resumed
//     (blue-green) or the previous binary handed back (Downgrader), hook
//     OnRollback called. Irreversible steps (migration Complete, an upgrade
//     with no Downgrader) are never rolled back, and the rollback stops at
//     the last completed one: what follows a point of no return depends on
//     what precedes it. Every decision is recorded with its reason.
//   - Operator commands (Promote, PromoteFull, Abort, Pause, Resume, Retry)
//     are serialized with each other and with the runner; a command that
//     does not apply is refused with a *CommandError saying why.
//
// # Upgrades and handoffs
//
// Options.Version names the running binary. An Upgrade step records
// From/To, calls Upgrader.Upgrade and, once the new process is ready,
// returns ErrHandedOff without writing again. The new process (Version ==
// To) loads the state, records that it took over and continues; for a
// BlueGreen step it bakes (analyses every Interval for Window) and then
// calls BakeController.Promote, or on failure BakeController.Rollback,
// which hands the drive back: the old process, resumed by graceful, calls
// Run again and finishes the rollback. If the old process finds the step
// handed off but has the drive again, the new process died: the step fails
// and rolls back; the upgrade is not repeated.
//
// # Known limits
//
//   - One runner drives a rollout at a time; there is no lease. A second
//     runner is detected by the revision check, not prevented.
//   - A Pause command takes effect between steps and between the units of
//     ramps, rolling batches and analyses, not inside a consumer call.
//   - Pause and Abort reach the process whose Rollout they are sent to; after
//     a handoff the admin API of the new process is the one to use.
//   - Extra instances started for MaxSurge are stopped by the step; if the
//     process dies in between, stopping them is left to the Surger.
//   - A ProcessTarget's instances run in process groups of their own and
//     outlive a runner killed with SIGKILL (no parent-death signal: they
//     keep serving). With ProcessTargetOptions.StateDir the next runner
//     adopts them from a PID file (checked against PID reuse by start
//     time) and replaces them instead of starting a second instance;
//     without it they are unknown to it. A runner killed between starting
//     an instance and writing its PID file leaves that one instance
//     unknown.
//   - Retry starts again from the first step after the last completed
//     irreversible one; Run must then be called again (Drive does it).
//
// # Admin API
//
// NewHandler serves GET /api/status (every step with timings, decisions and
// errors), POST /api/{promote,promote-full,abort,pause,resume,retry}, and a
// small HTML page at /. It has no authentication: serve it with ListenUnix
// (mode 0600) or ListenLoopback. examples/rolloutctl is its command line.
//
// # Observability
//
// One trace per rollout: the first Run starts the root span "rollout <id>"
// and stores its ids in State.Trace; every later Run, in this process or
// one that resumes after a crash or takes over after a handoff, starts a
// "rollout <id> resumed" span whose parent is that stored root (a remote
// parent; the caller's own span, if any, is linked). Under each Run span
// there is a span per step attempt and per rollback. Counters baton.rollout.steps{kind,outcome},
// baton.rollout.analyses{verdict}, baton.rollout.commands{command} and the
// histogram baton.rollout.step.duration; a slog event per transition and
// decision.
//
// # Measured figures
//
// Each transition costs one Store write. On the 2-core CI machine (go test
// -run '^$' -bench . -benchtime 20x ./rollout/), across runs while other
// tests loaded the disk: FileStore Save 0.7 to 3.1 ms (two fsyncs), SQLite
// SQLStore Save (WAL, synchronous=FULL) 0.15 to 1.3 ms, and a plan of ten
// set-weight steps 27 to 120 ms on a FileStore, so 3 to 12 ms of engine
// overhead per step. Rollouts last minutes; this is noise, and it is what
// buys resuming after a kill -9 at any point.
package rollout
