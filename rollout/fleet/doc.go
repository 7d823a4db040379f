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
//   - Close leaves the record until the engine stops renewing it; Leave
//     deletes it at once.
//   - The admin API and the HTML page show one process's Rollout;
//     Member.StatusStore reads any rollout's state from any host, and
//     Member.Command forwards commands, for an admin front that shows the
//     fleet.
//
// Measured figures (takeover time, the cost of a fenced Save, propagation
// of a document to every member) are in BENCHMARKS.md.
package fleet
