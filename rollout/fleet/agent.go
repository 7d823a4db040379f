package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/batonhq/baton/rollout"
)

// DefaultCheckInterval is how often an Agent checks the health of a
// baking process when AgentOptions.CheckInterval is zero.
const DefaultCheckInterval = 500 * time.Millisecond

// AgentOptions configure NewAgent. Upgrader and Binaries are required; the
// other zero fields mean their documented defaults.
type AgentOptions struct {
	// Upgrader hands this instance over to another version's binary: with
	// bind.NewUpgrader over a graceful.Upgrader, a socket handoff that
	// loses no connection. When it is also a rollout.BakeController (bind's
	// is), the new process bakes with its predecessor warm: Promote ends the
	// bake, Rollback gives serving back to the predecessor. When it has
	// AwaitDrive(ctx) (resumed bool, err error), as bind's has, the old
	// process learns after a handoff whether it took serving back (the new
	// process left during its bake) or is done.
	Upgrader rollout.SpecUpgrader
	// Binaries finds a version's executable on this host (a PathTemplate
	// such as "/opt/svc/releases/{version}/svc").
	Binaries Resolver
	// Check is this instance's health while it bakes a new version,
	// called every CheckInterval: a failure ends the bake with a rollback
	// to the predecessor. Nil means healthy.
	Check func(ctx context.Context) error
	// CheckInterval: zero means DefaultCheckInterval.
	CheckInterval time.Duration
}

// Agent makes this instance run what the leader wants: it watches the
// member's Desired document and applies each new version through the
// Upgrader (a socket handoff to the version's binary, found by Binaries),
// bakes it, and reports what runs as Observed under the member's lease. A
// process started by a handoff runs its own Agent, which finds the
// predecessor's report ("upgrading" to this version), bakes for the
// Desired's Bake while checking Check, and then promotes and reports
// ready; if the desired version goes back to the predecessor's during the
// bake, it gives serving back. The zero value is not usable; use
// NewAgent.
//
// While the member is stale the Agent changes nothing: the instance keeps
// serving what it last applied, and the Agent acts again once its Mirror
// has caught up.
type Agent struct {
	m   *Member
	o   AgentOptions
	key string

	mu      sync.Mutex
	obs     Observed
	written Observed // last report written, At cleared
	lease   Lease    // the lease it was written under
}

type drivable interface {
	AwaitDrive(ctx context.Context) (resumed bool, err error)
}

// NewAgent returns the Agent of m; Run starts it.
func NewAgent(m *Member, o AgentOptions) (*Agent, error) {
	if o.Upgrader == nil || o.Binaries == nil {
		return nil, errors.New("fleet: NewAgent: AgentOptions.Upgrader and Binaries are required")
	}
	if o.CheckInterval <= 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if err := ValidVersion(m.o.Version); err != nil {
		return nil, fmt.Errorf("fleet: NewAgent: this member's version: %w", err)
	}
	return &Agent{m: m, o: o, key: m.keys.Desired(m.o.ID)}, nil
}

// Observed returns the agent's last report.
func (a *Agent) Observed() Observed {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.obs
}

// agentLoop is the state of one Run.
type agentLoop struct {
	a       *Agent
	version string
	baking  bool
	from    string    // the predecessor's version while baking
	started time.Time // when this process began baking
	failed  int64     // desired revision whose apply failed: not retried
	failWhy string
}

// Run applies the desired state until ctx ends (it returns ctx.Err()) or
// this process handed the instance over for good (it returns nil: the
// successor reports from now on, and this process drains and exits as
// graceful makes it).
func (a *Agent) Run(ctx context.Context) error {
	mi, err := a.m.Mirror(a.key)
	if err != nil {
		return err
	}
	l := &agentLoop{a: a, version: a.m.o.Version, started: time.Now()}
	l.findPredecessor(ctx)
	var check <-chan time.Time
	if a.o.Check != nil {
		t := time.NewTicker(a.o.CheckInterval)
		defer t.Stop()
		check = t.C
	}
	for {
		ch := mi.Changed()
		_, leaseCh := a.m.Lease()
		var wake, retry <-chan time.Time
		if !mi.Stale() {
			d, ok := l.desired(mi)
			if done := l.step(ctx, d, ok); done {
				return nil
			}
			if l.baking && ok && d.Version == l.version {
				wake = time.After(time.Until(l.started.Add(d.Bake)))
			}
			if a.pending() {
				retry = time.After(a.m.o.ProbeInterval)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-wake:
		case <-retry:
		case <-leaseCh:
			a.mu.Lock()
			a.lease = nil // written again under the new lease
			a.mu.Unlock()
		case <-check:
			if !l.baking || mi.Stale() {
				continue
			}
			if err := a.o.Check(ctx); err != nil && ctx.Err() == nil {
				if l.giveBack(ctx, fmt.Sprintf("health check failed during the bake of %s: %v", l.version, err)) {
					return nil
				}
			}
		}
	}
}

func (l *agentLoop) desired(mi *Mirror) (Desired, bool) {
	doc, ok := mi.Get(l.a.key)
	if !ok {
		return Desired{}, false
	}
	var d Desired
	if err := json.Unmarshal(doc.Value, &d); err != nil {
		l.a.m.log.Warn("fleet: desired state is not valid; ignoring it", "key", doc.Key, "err", err)
		return Desired{}, false
	}
	d.Revision = doc.Revision
	return d, true
}

// findPredecessor reads the report of the process this one replaces: if
// it was upgrading to this version, this process bakes.
func (l *agentLoop) findPredecessor(ctx context.Context) {
	a := l.a
	ctx, cancel := context.WithTimeout(ctx, a.m.o.LeaseTTL)
	defer cancel()
	if err := a.m.AwaitFresh(ctx); err != nil {
		return
	}
	o, err := ReadObserved(ctx, a.m.e, a.m.keys, a.m.o.ID)
	if err != nil {
		return
	}
	if o.State == StateUpgrading && o.DesiredVersion == l.version && o.Version != l.version {
		l.baking, l.from = true, o.Version
		a.m.log.Info("fleet: baking", "version", l.version, "predecessor", o.Version)
	}
}

// step acts on the desired state; it reports whether this process is no
// longer the instance.
func (l *agentLoop) step(ctx context.Context, d Desired, ok bool) bool {
	a := l.a
	state := StateReady
	if l.baking {
		state = StateBaking
	}
	if !ok {
		a.report(ctx, Observed{State: state})
		return false
	}
	if d.Version == l.version {
		if l.baking && !time.Now().Before(l.started.Add(d.Bake)) {
			l.promote(ctx)
			state = StateReady
		}
		a.report(ctx, Observed{State: state, Desired: d.Revision, DesiredVersion: d.Version})
		return false
	}
	if d.Revision == l.failed {
		a.report(ctx, Observed{State: state, Error: l.failWhy, Desired: d.Revision, DesiredVersion: d.Version})
		return false
	}
	fail := func(format string, args ...any) bool {
		l.failed, l.failWhy = d.Revision, fmt.Sprintf(format, args...)
		a.m.log.Warn("fleet: desired version not applied", "version", d.Version, "err", l.failWhy)
		a.report(ctx, Observed{State: state, Error: l.failWhy, Desired: d.Revision, DesiredVersion: d.Version})
		return false
	}
	if err := ValidVersion(d.Version); err != nil {
		return fail("%v", err)
	}
	if l.baking && d.Version == l.from {
		if bc, ok := a.o.Upgrader.(rollout.BakeController); ok {
			a.report(ctx, Observed{State: StateDraining, Desired: d.Revision, DesiredVersion: d.Version})
			if err := bc.Rollback(ctx); err == nil {
				a.m.log.Info("fleet: gave serving back to the predecessor", "version", l.version, "predecessor", l.from)
				return true
			} else if ctx.Err() != nil {
				return true
			} else {
				a.m.log.Warn("fleet: could not give serving back; upgrading to the predecessor's version instead", "err", err)
			}
		}
	}
	bin, err := a.o.Binaries.Binary(d.Version)
	if err != nil {
		return fail("resolving the binary of %s: %v", d.Version, err)
	}
	a.report(ctx, Observed{State: StateUpgrading, Desired: d.Revision, DesiredVersion: d.Version})
	a.m.log.Info("fleet: upgrading", "from", l.version, "to", d.Version, "binary", bin, "bake", d.Bake)
	if err := a.o.Upgrader.UpgradeTo(ctx, rollout.UpgradeSpec{Version: d.Version, Binary: bin, Bake: d.Bake}); err != nil {
		if ctx.Err() != nil {
			return true
		}
		return fail("upgrading to %s (%s): %v", d.Version, bin, err)
	}
	// The new process reports from now on; this one waits to learn whether
	// it takes serving back.
	dr, ok := a.o.Upgrader.(drivable)
	if !ok {
		return true
	}
	resumed, err := dr.AwaitDrive(ctx)
	if err != nil || !resumed {
		return true
	}
	l.baking = false
	a.m.log.Warn("fleet: serving taken back: the new process left during its bake", "version", d.Version)
	a.mu.Lock()
	a.lease = nil // the successor's report replaced ours: write it again
	a.mu.Unlock()
	return fail("the %s process left during its bake (failed its checks or exited); %s resumed", d.Version, l.version)
}

// promote ends the bake: the predecessor drains and exits.
func (l *agentLoop) promote(ctx context.Context) {
	a := l.a
	l.baking = false
	if bc, ok := a.o.Upgrader.(rollout.BakeController); ok {
		if err := bc.Promote(ctx); err != nil {
			a.m.log.Warn("fleet: promoting after the bake", "version", l.version, "err", err)
		}
	}
	a.m.log.Info("fleet: baked and promoted", "version", l.version, "predecessor", l.from)
}

// giveBack ends a failed bake by giving serving back to the predecessor,
// which resumes and reports the failure. It reports whether this process
// is no longer the instance.
func (l *agentLoop) giveBack(ctx context.Context, why string) bool {
	a := l.a
	a.m.log.Warn("fleet: bake failed", "version", l.version, "reason", why)
	bc, ok := a.o.Upgrader.(rollout.BakeController)
	if !ok {
		return false
	}
	if err := bc.Rollback(ctx); err != nil {
		a.m.log.Warn("fleet: could not give serving back", "err", err)
		return false
	}
	return true
}

// pending reports whether the last report is not in the engine yet.
func (a *Agent) pending() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	o := a.obs
	o.At = time.Time{}
	return a.lease == nil || a.written != o
}

func (a *Agent) setState(ctx context.Context, s string) {
	if a.m.Info().State != s {
		_ = a.m.SetState(ctx, s)
	}
}

// report records o and writes it under the member's lease when it changed
// (or the lease did). While the member is not registered it is written
// after the next registration.
func (a *Agent) report(ctx context.Context, o Observed) {
	o.Version, o.PID = a.m.o.Version, os.Getpid()
	if o.State != StateDraining {
		a.setState(ctx, o.State) // the membership record says the same
	}
	lease, _ := a.m.Lease()
	a.mu.Lock()
	a.obs = o
	a.obs.At = time.Now()
	same := a.written == o && a.lease == lease && lease != nil
	a.mu.Unlock()
	if same || lease == nil {
		return
	}
	o.At = time.Now()
	b, _ := json.Marshal(o)
	wctx, cancel := context.WithTimeout(ctx, a.m.o.LeaseTTL)
	defer cancel()
	if _, err := a.m.e.Commit(wctx, Txn{Ops: []Op{{Key: a.m.keys.Observed(a.m.o.ID), Value: b, Prev: Any, Lease: lease.ID()}}}); err != nil {
		a.m.log.Debug("fleet: writing the observed state", "err", err)
		return
	}
	o.At = time.Time{}
	a.mu.Lock()
	a.written, a.lease = o, lease
	a.mu.Unlock()
}
