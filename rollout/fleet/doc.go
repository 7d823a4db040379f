// Package fleet coordinates the instances of one service on several hosts
// through an engine they already trust — etcd (package
// rollout/fleet/etcd) or the service's PostgreSQL (rollout/fleet/postgres)
// — with no control plane and no consensus of its own: every guarantee
// below rests on the engine's compare-and-swap, leases and watches.
//
// # Lifecycle
//
// Every instance joins the fleet, and may drive rollouts:
//
//	e, _ := etcd.Open(clientv3.Config{Endpoints: endpoints}) // or postgres.New(ctx, db, postgres.Options{})
//	m, err := fleet.Join(ctx, e, fleet.Options{Version: "v2", Address: "10.0.0.5:8080"})
//	defer m.Leave(ctx)
//	m.SetState(ctx, fleet.StateReady)
//
//	drive, _ := fleet.DriveRollout(fleet.RolloutOptions{Plan: buildPlan})
//	d, _ := fleet.NewDriver(m, fleet.DriverOptions{Drive: drive})
//	go d.Run(ctx) // campaigns; drives while it leads; steps down when it loses
//
//	err = m.Command(ctx, "release-v2", rollout.CmdPause, "") // from any host
//
// # Membership
//
// A Member's record (id, host, advertised address, version, PID, lifecycle
// state in graceful.State's words, start time) lives under a lease the
// engine keeps alive. A member that dies, is stopped or is cut off stops
// renewing, and its record disappears one lease TTL later (plus the
// engine's expiry check: up to 0.5 s on etcd, ReapInterval on
// PostgreSQL); a member that lost its lease but lives registers again.
// Member.Members is the live list as last seen; Member.Registry is a
// rollout.InstanceRegistry that reads the engine each time, so
// rollout.WaitOldGone (and a migration's contract step after it) waits for
// every host's old versions, not only this one's.
//
// # One driver, fenced
//
// A Driver campaigns in the election Layout.Election(DefaultElection) with
// its member's lease. The leader's Lead carries the leadership's term, the
// fencing token: the engine applies a write made through the Lead (its
// Store's every Save, Lead.Commit) only while that leadership holds, in the
// same step that checks it (etcd: a Txn compare on the leader key's create
// revision; PostgreSQL: a check of the election row's term and lease expiry
// inside the write's serialized transaction). So a driver that was stopped,
// cut off or slow, and wakes up believing it still leads, has its write
// refused — never applied — and its runner stops (the Store's error
// matches both ErrFenced and rollout.ErrConflict). When the leader dies or
// is cut off, its lease expires and another member's Driver takes over
// within the lease TTL, loads the rollout's stored state and resumes it with
// rollout's guarantees: a step recorded complete never runs again; the step
// that was running runs again (at least once).
//
// # Operator commands from any host
//
// Member.Command writes the command as a document under the sender's lease
// at Layout.Commands(rollout); the leading driver watches that prefix,
// applies each command to its Rollout and answers in place, fenced. The
// state change and the record that the command was applied are one fenced
// write, so a command is applied once even when the driver dies before
// answering it: the next driver finds it in the state and answers
// "accepted". A refused command comes back as a *rollout.CommandError with
// the driver's reason.
//
// # Desired and observed state: the Agent
//
// The leader says what each instance must run with Lead.SetDesired: a
// Desired document at Layout.Desired(member) (the version, the rollout
// that asked, the bake), fenced, and not under a lease, so that a process
// restarted by its supervisor applies it too. Every instance process runs
// an Agent:
//
//	upg := bind.NewUpgrader(gracefulUpgrader, bind.UpgraderOptions{})
//	a, _ := fleet.NewAgent(m, fleet.AgentOptions{Upgrader: upg,
//		Binaries: fleet.PathTemplate("/opt/svc/releases/{version}/svc")})
//	go a.Run(ctx) // returns nil once this process handed the instance over
//
// The Agent watches its Desired document. When it names another version,
// the version is checked (ValidVersion: no '/', no "..", nothing a shell
// or a template would read), its binary is found by Binaries (the
// documented resolver: a PathTemplate is an absolute path with
// {version}, the result a clean path to an executable regular file), and
// the Agent reports "upgrading" and hands the instance over: with
// rollout/bind over graceful, a socket handoff to that binary with a bake
// window, so no connection is refused or reset. The new process runs its
// own Agent, which finds its predecessor's "upgrading" report, reports
// "baking", checks AgentOptions.Check for the Desired's Bake, then promotes
// (the predecessor drains and exits) and reports "ready". If the desired
// version goes back to the predecessor's during the bake, or Check fails,
// the new process gives serving back (graceful's Rollback: the predecessor
// resumes) and the predecessor reports why the version was not applied.
// Each report is an Observed document at Layout.Observed(member) under the
// reporting process's lease (version, lifecycle state, error, and the
// revision of the Desired it answers), and the membership record's state
// says the same. A version whose binary is missing or whose new process
// does not start is reported as an error and not tried again until the
// leader writes the Desired again. When Run returns nil, stop this
// process's Driver too (cancel its Run): the leadership then passes at once
// instead of when this process exits.
//
// # Rolling updates across hosts
//
// Rolling builds the steps of a fleet rolling update for a plan driven by
// DriveRollout: one replace step per batch of MaxUnavailable hosts
// (canary hosts first, in a batch of their own), and an analyze step
// after each batch with the plan's Analyzer (rollout's own analysis, with
// its options). A batch starts only when the hosts outside it that are not
// ready (no live process, or one not reporting ready) leave room for it
// under MaxUnavailable; it writes each host's Desired and is done when
// every host of the batch reports the version ready in answer to it,
// bake included. A host that reports the version could not be applied
// fails the batch at once. A failed batch or analysis rolls the rollout
// back with rollout's rules: each replaced batch, last first, is asked for
// Previous and waited for the same way.
//
// # Engine trouble
//
// A member probes the engine every ProbeInterval. When the engine does not
// answer, or the membership lease lapsed, the member is stale: it logs it,
// Health and the gauge baton.fleet.stale say it, and Mirrors keep the last
// documents they had — the instance keeps serving what it last applied.
// The driver stops driving (the running step's context is cancelled and
// nothing more is written), so a rollout pauses instead of half-applying.
// When the engine answers again, each Mirror lists its prefix anew and
// watches from there (caught up at a revision it can name), and the driver
// loads the stored state and resumes.
//
// # One canary and one flag configuration
//
// Two subpackages build on Member, Mirror and Lead: rollout/fleet/traffic
// gives the fleet one canary weight, salt and target (every host's
// canary.Splitter follows them) and one verdict (each host publishes its
// canary snapshot under its lease; the driver judges the live hosts'
// merge), and rollout/fleet/fleetflags makes the engine a flags source of
// whole, versioned documents, cached on each host.
//
// Each host reports what it has put in force of a shared document (the
// canary weight, the flag document's version) with Member.ReportApplied:
// an Applied document at Layout.Applied(member, document), under the
// member's lease, written again under every new lease. traffic's Follower
// and fleetflags' Source keep theirs. Registry.Hosts, the console's fleet
// page (rollout.HandlerOptions.Fleet), shows each live member's version
// and state from its Observed report, and its canary weight and flag
// version from its Applied reports: what that host applied, not what the
// fleet's documents say, so a host that has not applied a change yet
// shows the old value.
//
// # The console on every member
//
// The driver publishes the view of the rollout it drives (its
// rollout.StatusView, with the refusals its commands would give) at
// Layout.Console, fenced, at every change. Member.Console is the rollout
// console and admin API of rollout.NewRemoteHandler over that view, with
// the fleet page from Registry: serve it on every member's admin listener
// and any host shows the same rollout, takes the same commands (sent to
// the driver with Member.Command, answered once the published view shows
// their effect) and the same buttons, whichever member drives and after
// any takeover. rolloutctl and its console proxy work against it as
// against a local rollout.
//
// # Keys
//
// Layout documents the keys; everything lives under Options.Namespace, so
// several fleets can share one engine.
//
// # Guarantees
//
//   - Writes through a Lead are refused once its leadership is lost; two
//     drivers never both write a rollout's state.
//   - A member's record disappears within its lease TTL (plus the engine's
//     expiry check) after it stops renewing.
//   - A takeover happens within the lease TTL of the leader's last renewal,
//     plus the engine's expiry check and a campaign's reaction (a watch on
//     etcd, a notification or a timed look on PostgreSQL).
//   - Watches resume from their revision after a lost connection: no change
//     is missed or repeated; a Mirror that was stale lists again.
//   - An accepted operator command is applied once.
//   - An Applied report says what its host had in force when it wrote it:
//     it is written after the apply, so the page never shows a value
//     ahead of the host (it may lag it by the write).
//   - A Desired document is written only by a leader still leading, and
//     an Agent acts only on what it read from the engine while fresh:
//     while the engine is unreachable no host starts, promotes or gives
//     back a version (a bake does not end while stale).
//   - A rolling batch is done only when each of its hosts' live process
//     reports the version ready in answer to the current Desired; a
//     report of the previous process, or one answering an older Desired,
//     does not count.
//
// # Known limits
//
//   - Fencing covers the writes that go through the engine. A step whose
//     effect is elsewhere (a hook calling a webhook, a migration run by the
//     driver against the database) can still be running in a stopped-and-
//     woken former leader until its next write is refused; the Lead's
//     context is cancelled as soon as the loss is known locally, and such
//     effects must be idempotent, as rollout requires anyway.
//   - A leader learns it was deposed only when its lease's renewal fails or
//     a fenced write is refused; in between it may think it leads (which
//     is why writes are fenced).
//   - Rolling's Hosts are configuration, the same in every member: a
//     host missing from the fleet holds its batch (and the batches after
//     it, by MaxUnavailable) until it is back or HealthTimeout fails the
//     step. A rollback does not wait for room: it puts Previous back on
//     the replaced hosts even when others are down.
//   - A replace step interrupted by a takeover runs again: its Desired
//     documents are written again (the same content), which an Agent
//     ignores unless the version changed; a bake already under way goes
//     on from where it was.
//   - The Agent hands over by exec of another binary: an instance's
//     processes during a bake are two (the predecessor warm), both
//     members with one id; the record and the Observed document are the
//     last writer's. The predecessor stops reporting once it handed over,
//     and reports again only if it takes serving back.
//   - graceful's bake window (the Desired's Bake plus bind's BakeMargin)
//     ends on its own: an engine outage longer than that leaves the new
//     version serving with no warm fallback, and a rollback then upgrades
//     to the previous binary instead of giving serving back.
//   - A process killed in the middle of its own handoff leaves it to
//     graceful (the new process stays or the old one resumes) and to the
//     supervisor; the Agent of whichever runs reports it.
//   - Close leaves the record until the engine stops renewing it; Leave
//     deletes it at once.
//   - The fleet page shows one canary weight and one flag version per
//     host: with several canaries or flag documents, the first report by
//     name. A host whose Follower or Source was closed keeps showing what
//     it last applied until its lease ends; a host cut off from the
//     engine shows what it applied before.
//   - Member.Console shows the rollout the driver drives now (the last
//     view it published), not the earlier ones: Member.StatusStore reads
//     any rollout's state. The view is published at each change and, for
//     progress that moves without one (a backfill's rows), at most every
//     ViewInterval; a view larger than MaxValueSize is not published.
//
// Measured figures (takeover time, the cost of a fenced Save, propagation
// of a document to every member, a desired state answered by every host)
// are in BENCHMARKS.md. examples/fleet runs all of it on three host
// processes.
package fleet
