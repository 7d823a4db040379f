// Package rollout runs a deployment strategy end to end inside the service,
// with no control plane: a release (a manifest of steps: upgrade the
// binary, blue-green with a bake window, set the canary weight, pause,
// analyse, ramp a flag, run a migration phase, wait until old versions are
// gone, call a hook, replace a batch of instances) is executed by a
// [Rollout] that persists its state before every effect, rolls back
// automatically, and takes operator commands through an admin HTTP API.
// The engine imports none of baton's other packages: rollout/bind binds
// graceful, canary, flags and migrate to its interfaces.
//
// # Lifecycle
//
// A release is data. The operator writes a manifest ([ParseRelease] for
// the format) and starts it with `rolloutctl start release.yaml` (or
// POST /api/start); every process of the service runs a [Driver] that
// binds the manifest to its own adapters ([Bindings]) and drives its side
// of it:
//
//	sock, _ := rollout.ListenAdmin("/run/orders/admin.sock") // <path>.<pid>, 0600, and a stable name
//	d, _ := rollout.NewDriver(ctx, rollout.DriverOptions{
//		Store: store, Version: version, Socket: sock, AwaitDrive: up.AwaitDrive,
//		Bind: func(rel *rollout.Release) (rollout.Bindings, error) {
//			return rollout.Bindings{Version: version, Upgrader: up, Weights: bind.CanaryWeights{Splitter: split},
//				Flags: ramps, Migrations: runners, Analyzers: analyzers}, nil
//		},
//	})
//	srv := rollout.ServeAdmin(sock, d.Handler(rollout.HandlerOptions{})) // serves in its own goroutine
//	defer srv.Close()
//	go d.Run(ctx) // after Ready: drives the active release, across handoffs
//
// [NewDriver] runs before the process is ready: it loads the active
// release, binds it (a new process that cannot bind its side fails there,
// so its upgrade fails in the old process, which rolls back) and restores
// the canary weight the last release of its version set. examples/service
// is a whole service built this way.
//
// Plans can also be built in code ([Plan], with the step constructors and
// strategies below) and run with [New] and [Rollout.Run] or
// [Rollout.Drive]; every process that may drive such a plan must build
// the same one.
//
// [Rollout.Run] returns nil when every step succeeded; an error wrapping
// [ErrRolledBack] after a failure or an abort was rolled back;
// [ErrRollbackFailed] when a rollback action failed ([Rollout.Retry]
// retries it); [ErrHandedOff] when another process took the drive;
// ctx.Err() when ctx ends and an error wrapping [ErrNotSaved] when the
// store refused a write, both leaving the rollout resumable.
//
// # Steps, strategies and adapters
//
//	step kind       constructor          what it does; its rollback
//	upgrade         Upgrade              socket handoff to the new binary; Downgrader, or irreversible
//	blue-green      BlueGreen            handoff, bake with analysis, promote; hand back to the old process
//	set-weight      SetWeight            canary weight (recorded with the release first); weight to 0
//	pause           Pause                wait, or until promoted; nothing
//	analyze         Analyze              measurements, conclusive ones required; nothing
//	ramp-flag       RampFlag             flag percentages with analysis between; flag disabled
//	migration       Migration            one expand-contract phase; migration rolled back (Complete: irreversible)
//	wait-old-gone   WaitOldGone          until no older instance is alive; nothing
//	hook            Hook, Webhook        Go func or HTTP call, or a confirm gate; OnRollback
//	replace         Rolling              one batch of instances, health-gated; previous version back
//
//	strategy        builds
//	Canary          set-weight, pause, analyze per weight
//	BlueGreenStrategy  pre-rollout hook, blue-green, post-rollout hook
//	ProgressiveFlag one ramp-flag step with analysis
//	ExpandContract  expand, deploy, dual-write flag, backfill, read flag, switch reads, wait old gone, contract
//	Rolling         replace batches (MaxUnavailable, MaxSurge) with pauses and analyses
//
//	adapter (rollout/bind)   binds
//	bind.Upgrader            graceful: upgrade with the release's binary, bake, promote (installs it), rollback
//	bind.CanaryWeights       canary: Splitter.SetWeight
//	bind.CanaryAnalyzer      canary: canary against stable, alpha budget planned over the plan's looks
//	bind.FlagRamps           flags: durable percentage ramps and kill switch
//	bind.MigrateRunners      migrate: the phases of named migrations
//	bind.MigrateRegistry     migrate: live instances by version
//	bind.BackfillTracker     migrate: a backfill's progress, for the console
//
//	other analyzers          judge
//	promanalysis.Analyzer    canary against stable from Prometheus (rollout/promanalysis)
//
// Steps talk to the rest of the system through small interfaces declared
// here ([Upgrader], [BakeController], [Downgrader], [WeightSetter],
// [Analyzer], [FlagRamper], [MigrationPhaser], [InstanceRegistry],
// [Target], [Surger]); rollouttest has a fake of each.
//
// # Guarantees
//
//   - Persist first, then act. Every transition (step started, progress
//     unit done, decision, step finished, command accepted, canary weight
//     set) is written to the [Store] before it takes effect; it is built on
//     a copy and becomes the state in memory only once saved, so memory
//     always equals disk. A write the store refuses (a full disk) is like a
//     cancelled context: Run returns an error wrapping [ErrNotSaved], the
//     step stays recorded running and resumes on the next Run, a command
//     changes nothing and the admin API answers 503. A failing store never
//     turns into a rollback. The FileStore replaces its file atomically
//     (temp file, fsync, rename, directory fsync); SQLStore writes one row.
//   - Writes are compare-and-swap on a revision: two runners of one rollout
//     never overwrite each other; the one that loses stops with ErrConflict.
//   - A step recorded complete is never run again on resume; a step that
//     was running when the process died runs again, its consumer call
//     included (the effect and the record of its completion cannot be one
//     atomic write): effects are at-least-once, and consumer methods must
//     be idempotent (each interface says so). Multi-unit steps (ramps,
//     rolling batches, analyses, bake windows, timed pauses) resume from
//     their persisted progress and remaining time. The kill -9 tests check
//     this for every step kind, killing the runner before a step's effect,
//     after it, and right after its completion is saved.
//   - A stored state is checked on load: unknown fields or values, indexes
//     and progress out of range, steps that are not the plan's are refused
//     with a [*StateError]; Irreversible comes from the plan.
//   - A failing step, a failed analysis or Abort rolls back the completed
//     steps in reverse: weight to 0, flag disabled, migration rolled back,
//     instances replaced by the previous version, old process resumed
//     (blue-green) or the previous binary handed back (Downgrader), hook
//     OnRollback called. The rollback stops at the last point of no return
//     and the rollout ends rolled back: an irreversible step (a migration's
//     Complete, an upgrade with no Downgrader), or a blue-green step whose
//     bake was promoted ([StepState].Promoted, recorded before the old
//     process is told to exit: it is gone afterwards). What follows a point
//     of no return depends on what precedes it, so earlier steps stay
//     applied. Every decision is recorded with its reason.
//   - Analyses need evidence: an Analyze step passes only with
//     [AnalysisOptions].MinConclusive conclusive measurements, a bake only
//     with [BakeOptions].MinConclusive conclusive rounds, and a ramp moves
//     to its next percentage only on a conclusive analysis; the decisions
//     say how many were conclusive. An analyzer that spends an error
//     budget over repeated looks ([LookPlanner]) is told how many the plan
//     makes.
//   - The canary weight belongs to the release ([Status].Weight): a process
//     of the release's version that starts (after an upgrade, a crash, a
//     restart) serves at it again ([Rollout.Restore], [NewDriver]); a
//     set-weight step before a blue-green step (a manifest's startWeight)
//     sets the weight the new process starts with, recorded by the old one
//     ([RecordWeight]).
//   - Operator commands (Promote, PromoteFull, Abort, Pause, Resume, Retry)
//     are serialized with each other and with the runner; a command that
//     does not apply (Retry while running, Pause while rolling back) is
//     refused with a [*CommandError] saying why and changes nothing.
//
// # Upgrades and handoffs
//
// [Options].Version names the running binary. An upgrade step records
// From/To, calls the Upgrader (with the release's binary and the bake it
// needs, through [SpecUpgrader]) and, once the new process is ready,
// returns ErrHandedOff without writing again. The new process (Version ==
// To) loads the state, records that it took over and continues; for a
// blue-green step it bakes (analyses every Interval for Window) and then
// promotes, or on failure calls [BakeController].Rollback, which hands the
// drive back: the old process, resumed by graceful, runs again and
// finishes the rollback ([Driver.Run] does this with AwaitDrive). If the
// old process finds the step handed off but has the drive again, the new
// process died: the step fails and rolls back; the upgrade is not
// repeated.
//
// A release's steps up to its upgrade run in the old process, the rest in
// the new one, so a manifest puts a migration the new version ships after
// the upgrade, and the old binary never needs to know it. With an
// in-process canary the stable side is the old version's code inside the
// new binary: retire it (weight 100%) before a contract drops what it
// uses. A plan that contracts a migration while its weight is lower is
// refused ([PlanError]).
//
// # Admin API
//
// [NewHandler] and [Driver.Handler] serve GET /api/status (every step with
// timings, decisions and errors; ?wait=REVISION answers at the next
// change, for watchers), POST /api/{promote,promote-full,abort,pause,
// resume,retry}, POST /api/start (a Driver's: a release manifest as JSON
// or YAML), GET /api/fleet, and the console (below). Every error is
// {"error": "..."}.
// It has no authentication: serve it with [ListenAdmin] or [ListenUnix]
// (mode 0600) or [ListenLoopback]. It refuses what a web page could make
// a browser send: a Host that is not loopback or in
// [HandlerOptions].AllowedHosts (DNS rebinding), a foreign Origin, and a
// POST that is not JSON (YAML for start). [ListenAdmin] gives each process
// its own socket and a stable name that the Driver points at the process
// driving the rollout: `rolloutctl -socket <name>` follows it across
// handoffs. examples/rolloutctl is the command line (start, watch,
// status, console, commands).
//
// [NewRemoteHandler] serves the same API and console for a rollout that
// runs in another process ([Remote]: its view as the runner published it,
// commands sent to the runner and answered with their effect);
// rollout/fleet's Member.Console serves the fleet driver's rollout on
// every member this way.
//
// # Console
//
// The admin listener also serves the operator's console, a page to keep
// open during a deploy: GET / for the rollout, GET /fleet for the hosts.
// It is embedded in the package (no build step, nothing loaded from
// elsewhere) and stays live without a reload: its script long-polls
// /api/status (an answer at every change, and at least every second) and
// redraws. The rollout's page shows the plan as a row of steps, the
// current one marked, each with its progress ([StepView]: ramp
// percentages, measurements, bake rounds, the time left of a pause or a
// bake window, a backfill's rows and ETA when the [MigrationPhaser] is a
// [BackfillReporter]); charts drawn as inline SVG of the canary against
// stable error rate and p50/p99 latency per analysis window (from the
// analyzers that are [MeasuredAnalyzer]s, as bind.CanaryAnalyzer), the
// flag ramp and the canary weight over time, each decision marked on the
// time axis; series told apart by dash, marker and label, not by colour.
// Every decision is listed with its reason. The buttons (promote,
// promote-full, pause, resume, abort, retry) ask for a confirmation that
// names the effect, are disabled when the command does not apply, with
// the reason the API would give ([StatusView].Refusals, computed by the
// commands' own checks), and show the API's refusal when the state moved
// in between. The fleet page lists [HandlerOptions].Fleet's hosts
// ([FleetView]; rollout/fleet's Member.Registry() is one) with version,
// state, canary weight and flag version; without one, this process
// alone. GET /releases lists a Driver's releases, newest first (the
// index keeps the last 50), each with its phase; /releases/{id} is the
// page of one, drawn once from its stored state, every command refused
// (the release served now has the live page at /).
//
// To open it, point a browser at the loopback address of [ListenLoopback]
// (`http://127.0.0.1:9091/`). A browser cannot open a Unix socket: for
// [ListenAdmin] or [ListenUnix] run `rolloutctl -socket PATH console`,
// which serves the console on a loopback port, prints the URL and
// forwards each request over the socket (following its stable name
// across handoffs), with the same Host and Origin guard ([Guard]) on its
// side.
//
// The console has the API's security, and no more: loopback or socket
// only, Host and Origin checked, commands as JSON. Its pages carry
// [ConsoleCSP] (only the page's own script and style, requests to itself
// only, no inline script or event handler, no framing); the server
// renders values with html/template and the script sets them as text,
// never as markup.
//
// # Observability
//
// One trace per rollout: the first Run starts the root span "rollout <id>"
// and stores its ids in [Status].Trace; every later Run, in this process or
// one that resumes after a crash or takes over after a handoff, starts a
// "rollout <id> resumed" span whose parent is that stored root (a remote
// parent; the caller's own span, if any, is linked). Under each Run span
// there is a span per step attempt and per rollback. Counters
// baton.rollout.steps{kind,outcome}, baton.rollout.analyses{verdict},
// baton.rollout.commands{command} and the histogram
// baton.rollout.step.duration; a slog event per transition and decision.
// Each transition costs one Store write; BENCHMARKS.md has the figures.
//
// # Known limits
//
//   - One runner drives a rollout at a time; there is no lease. A second
//     runner is detected by the revision check, not prevented.
//   - A Pause command takes effect between steps and between the units of
//     ramps, rolling batches and analyses, not inside a consumer call.
//   - The stable admin socket name is a symbolic link that the driving
//     process claims; between a handoff and the new process's Run it still
//     names the old process, whose Rollout then refuses commands once it
//     lost the drive (rolloutctl tries again).
//   - A manifest names its consumers (analyzers, hooks, migrations, flags);
//     webhooks with URLs are for plans built in code.
//   - Extra instances started for MaxSurge are stopped by the step; if the
//     process dies in between, stopping them is left to the Surger.
//   - A ProcessTarget's instances run in process groups of their own and
//     outlive a runner killed with SIGKILL. With
//     [ProcessTargetOptions].StateDir the next runner adopts them from a
//     PID file that must be private to its user and, on Linux, carry the
//     process's start time (against PID reuse); elsewhere the pid alone is
//     trusted. A runner killed between starting an instance and writing its
//     PID file leaves that one instance unknown. ProcessTarget needs Unix:
//     on Windows NewProcessTarget returns [ErrNotSupported], and the
//     FileStore's flock and ownership checks are not made there.
//   - The FileStore refuses directories and files others may write on
//     Unix; it does not inspect Windows ACLs.
//   - Retry starts again from the first step after the last point of no
//     return; Run must then be called again (Drive and the Driver do it).
//   - The console's commands apply to the rollout its handler serves now;
//     a past release's page shows its stored state without the plan's
//     progress details (units, percentages, time left). Its charts draw
//     what the decisions recorded, at most [MaxDecisions] per step; a
//     measurement is recorded only by a [MeasuredAnalyzer].
package rollout
