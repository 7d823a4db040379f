// Package bind binds graceful, canary, flags and migrate to the
// interfaces of package rollout, so that the rollout engine imports none
// of them: each adapter is a few lines over the leaf package's own API.
//
//   - NewUpgrader(*graceful.Upgrader): rollout.Upgrader and
//     rollout.BakeController (graceful's own Promote and Rollback), and
//     AwaitDrive for the process that handed the drive away.
//   - CanaryWeights{Splitter}: rollout.WeightSetter over
//     canary.Splitter.SetWeight; the rollout keeps the weight with the
//     release and a restarted process gets it back with Rollout.Restore.
//   - CanaryAnalyzer{Splitter, Options}: rollout.Analyzer over a
//     canary.Analyzer (canary's pass, fail and insufficient data become
//     Pass, Fail and Inconclusive, with canary's reason), whose alpha
//     budget is planned over the looks the plan makes
//     (rollout.LookPlanner), and which judges a canary at 100% by its
//     absolute limits. It is a rollout.MeasuredAnalyzer: each decision
//     keeps both variants' figures for the rollout console's charts.
//   - NewFlagRamps(FlagRampsOptions{Store, StateFile}): rollout.FlagRamper
//     that writes each ramp to a state file before applying it and
//     re-applies the file at start, because a flags.Store's run-time
//     changes die with its process.
//   - MigrateRunners{name: *migrate.Runner}: rollout.MigrationPhaser, whose
//     Rollback waits for the new version's instances to leave, and
//     MigrateRegistry{Runner}: rollout.InstanceRegistry over migrate's
//     heartbeat registry. A BackfillTracker, given to
//     migrate.Options.OnProgress, and WithBackfillProgress make the
//     console show a running backfill's rows and ETA.
//
// No database driver or SDK comes with them: the caller opens its
// databases. examples/service wires all of them into a service a team can
// copy, and examples/demo runs one under load.
//
// # Guarantees and limits
//
// Every adapter method is idempotent, as rollout's at-least-once steps
// require: setting the same weight or percentage twice is setting it once,
// and migrate's phases return nil when the migration is already past them.
// A FlagRamps state file overrides the flag files' fallthrough for the
// flags it names until it is removed. Upgrader.Rollback can only hand back
// while the old process still bakes: after promotion it fails with
// graceful.ErrNoFallback, which is why rollout makes a promoted blue-green
// step a point of no return.
package bind
