package fleet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
	"github.com/batonhq/baton/rollout/fleet/fleettest"
	"github.com/batonhq/baton/rollout/rollouttest"
)

func TestMembership(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ns := namespace(t)
		a := join(t, b.open(t, b.addr), ns, "a", "v1")
		eb := b.open(t, b.addr)
		bm := join(t, eb, ns, "b", "v2")
		waitFor(t, "both members in a's list", 10*time.Second, a.MembersChanged, func() bool { return len(a.Members()) == 2 })
		ms := a.Members()
		if ms[0].ID != "a" || ms[1].ID != "b" || ms[1].Version != "v2" || ms[1].State != fleet.StateStarting || ms[1].PID == 0 || ms[1].Started.IsZero() {
			t.Fatalf("members %+v", ms)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if n, err := a.Registry().OldVersionsAlive(ctx, "v2"); err != nil || n != 1 {
			t.Fatalf("OldVersionsAlive(v2) = %d, %v; want 1 (a runs v1)", n, err)
		}
		if err := bm.SetState(ctx, fleet.StateReady); err != nil {
			t.Fatal(err)
		}
		if err := bm.SetState(ctx, "sleepy"); err == nil {
			t.Fatal("an unknown lifecycle state was accepted")
		}
		waitFor(t, "b's state ready in a's list", 10*time.Second, a.MembersChanged, func() bool {
			ms := a.Members()
			return len(ms) == 2 && ms[1].State == fleet.StateReady
		})
		// b dies without leaving: its engine stops renewing, so its record
		// must go within the lease TTL (plus the engine's expiry check).
		bm.Close()
		eb.Close()
		gone := time.Now()
		waitFor(t, "b's record to expire", 4*testTTL, a.MembersChanged, func() bool { return len(a.Members()) == 1 })
		t.Logf("%s: a dead member left the list %s after its last renewal stopped (TTL %s)", b.name, time.Since(gone).Round(time.Millisecond), testTTL)
		if n, err := a.Registry().OldVersionsAlive(ctx, "v1"); err != nil || n != 0 {
			t.Fatalf("OldVersionsAlive(v1) after b died = %d, %v; want 0", n, err)
		}
		c := join(t, b.open(t, b.addr), ns, "c", "v1")
		waitFor(t, "c in a's list", 10*time.Second, a.MembersChanged, func() bool { return len(a.Members()) == 2 })
		if err := c.Leave(ctx); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "c gone at once after Leave", testTTL/2, a.MembersChanged, func() bool { return len(a.Members()) == 1 })
	})
}

// leader runs a Driver for m whose Drive hands its Lead out and waits.
func leader(t *testing.T, m *fleet.Member) (<-chan *fleet.Lead, *fleet.Driver) {
	t.Helper()
	leads := make(chan *fleet.Lead, 4)
	d, err := fleet.NewDriver(m, fleet.DriverOptions{Drive: func(ctx context.Context, l *fleet.Lead) error {
		leads <- l
		<-ctx.Done()
		return ctx.Err()
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return leads, d
}

func awaitLead(t *testing.T, leads <-chan *fleet.Lead, d time.Duration, who string) *fleet.Lead {
	t.Helper()
	select {
	case l := <-leads:
		return l
	case <-time.After(d):
		t.Fatalf("%s did not lead within %s", who, d)
		return nil
	}
}

func TestFencedStoreConformance(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		m := join(t, b.open(t, b.addr), namespace(t), "a", "v1")
		leads, _ := leader(t, m)
		l := awaitLead(t, leads, 10*time.Second, "the only member")
		rollouttest.TestStore(t, func(t *testing.T) rollout.Store { return l.Store() })
	})
}

// TestDeposedLeaderSaveRefused cuts the leader off, lets another member
// take over and write, and heals the link: the old leader's Save, made with
// the revision it read, must be refused by the engine and change nothing.
func TestDeposedLeaderSaveRefused(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ns := namespace(t)
		link, err := fleettest.NewLink("", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer link.Close()
		ea := b.open(t, link.Addr())
		a := join(t, ea, ns, "a", "v1")
		leadsA, _ := leader(t, a)
		la := awaitLead(t, leadsA, 10*time.Second, "a")
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		rev, err := la.Store().Save(ctx, "r1", 0, []byte(`{"by":"a"}`))
		if err != nil {
			t.Fatal(err)
		}
		bm := join(t, b.open(t, b.addr), ns, "b", "v1")
		leadsB, db := leader(t, bm)
		link.Cut()
		cut := time.Now()
		lb := awaitLead(t, leadsB, 3*testTTL+time.Second, "b after a was cut off")
		t.Logf("%s: takeover %s after the leader was cut off (TTL %s)", b.name, time.Since(cut).Round(time.Millisecond), testTTL)
		if lb.Term() <= la.Term() {
			t.Fatalf("new term %d, old %d", lb.Term(), la.Term())
		}
		if li, err := db.Leader(ctx); err != nil || li.Member != "b" || li.Term != lb.Term() {
			t.Fatalf("Leader: %+v, %v", li, err)
		}
		if _, _, err := lb.Store().Load(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
		revB, err := lb.Store().Save(ctx, "r1", rev, []byte(`{"by":"b"}`))
		if err != nil {
			t.Fatal(err)
		}
		link.Restore()
		testchild.Eventually(t, "a's engine to reconnect", 30*time.Second, 50*time.Millisecond, func() error {
			pctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			return ea.Ping(pctx)
		})
		// a's store still holds revision rev as its own; only the fence can
		// refuse this write at the engine.
		_, err = la.Store().Save(ctx, "r1", revB, []byte(`{"by":"a, deposed"}`))
		if !errors.Is(err, fleet.ErrFenced) || !errors.Is(err, rollout.ErrConflict) {
			t.Fatalf("the deposed leader's Save: %v, want ErrFenced and rollout.ErrConflict", err)
		}
		data, got, err := bm.StatusStore().Load(ctx, "r1")
		if err != nil || got != revB || string(data) != `{"by":"b"}` {
			t.Fatalf("state after the refused Save: %s at %d (%v), want b's at %d", data, got, err, revB)
		}
		if _, err := bm.StatusStore().Save(ctx, "r1", revB, []byte(`{}`)); !errors.Is(err, fleet.ErrNotLeader) {
			t.Fatalf("Save through a status store: %v, want ErrNotLeader", err)
		}
	})
}

func TestCommandsReachDriver(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ns := namespace(t)
		a := join(t, b.open(t, b.addr), ns, "a", "v1")
		bm := join(t, b.open(t, b.addr), ns, "b", "v1")
		hooked := make(chan int, 4)
		drive, err := fleet.DriveRollout(fleet.RolloutOptions{Plan: func(l *fleet.Lead) (rollout.Plan, error) {
			return rollout.Plan{ID: "cmds", Steps: []rollout.Step{
				rollout.PauseUntilPromoted().Named("gate"),
				rollout.Hook(func(ctx context.Context, ev rollout.HookEvent) error { hooked <- ev.Attempt; return nil }, rollout.HookOptions{}).Named("after"),
			}}, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		d, err := fleet.NewDriver(a, fleet.DriverOptions{Drive: drive})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); d.Run(runCtx) }()
		defer func() { stop(); <-done }()
		status := func() (phase string, paused bool) {
			data, _, err := bm.StatusStore().Load(ctx, "cmds")
			if err != nil {
				return "", false
			}
			var st struct {
				Phase  string `json:"phase"`
				Paused bool   `json:"paused"`
				Steps  []struct {
					Status string `json:"status"`
				} `json:"steps"`
			}
			json.Unmarshal(data, &st)
			return st.Phase, st.Paused
		}
		// b is not the driver: its commands travel through the engine.
		if err := bm.Command(ctx, "cmds", rollout.CmdPause, ""); err != nil {
			t.Fatalf("pause from another member: %v", err)
		}
		if _, paused := status(); !paused {
			t.Fatal("an accepted pause is not in the stored state")
		}
		var ce *rollout.CommandError
		if err := bm.Command(ctx, "cmds", rollout.CmdPause, ""); !errors.As(err, &ce) || ce.Reason != "already paused" {
			t.Fatalf("second pause: %v, want the driver's refusal", err)
		}
		if err := bm.Command(ctx, "cmds", rollout.CmdResume, ""); err != nil {
			t.Fatal(err)
		}
		if err := bm.Command(ctx, "cmds", "reboot", ""); err == nil {
			t.Fatal("an unknown command was sent")
		}
		// The gate may not be waiting yet right after the resume; promote
		// is refused until it is.
		deadline := time.Now().Add(20 * time.Second)
		for {
			err := bm.Command(ctx, "cmds", rollout.CmdPromote, "")
			if err == nil {
				break
			}
			if !errors.As(err, &ce) || time.Now().After(deadline) {
				t.Fatalf("promote: %v", err)
			}
		}
		select {
		case n := <-hooked:
			if n != 1 {
				t.Fatalf("hook attempt %d", n)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("the step after the gate did not run after a promote from another member")
		}
		testchild.Eventually(t, "the rollout to succeed", 20*time.Second, 50*time.Millisecond, func() error {
			if p, _ := status(); p != "succeeded" {
				return fmt.Errorf("phase %q", p)
			}
			return nil
		})
	})
}

func TestStaleAndCatchUp(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ns := namespace(t)
		link, err := fleettest.NewLink("", b.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer link.Close()
		reader := sdkmetric.NewManualReader()
		mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
		defer mp.Shutdown(context.Background())
		a, err := fleet.Join(context.Background(), b.open(t, link.Addr()), fleet.Options{Namespace: ns, ID: "a", Version: "v1",
			LeaseTTL: testTTL, ProbeInterval: 200 * time.Millisecond, MeterProvider: mp})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		gauge := func(name string) int64 {
			var rm metricdata.ResourceMetrics
			if err := reader.Collect(context.Background(), &rm); err != nil {
				t.Fatal(err)
			}
			for _, sm := range rm.ScopeMetrics {
				for _, m := range sm.Metrics {
					if g, ok := m.Data.(metricdata.Gauge[int64]); ok && m.Name == name && len(g.DataPoints) == 1 {
						return g.DataPoints[0].Value
					}
				}
			}
			t.Fatalf("no gauge %s", name)
			return 0
		}
		writer := b.open(t, b.addr)
		key := a.Layout().Shared("weight")
		mi, err := a.Mirror(key)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if _, err := writer.Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: key, Value: []byte("100"), Prev: fleet.Any}}}); err != nil {
			t.Fatal(err)
		}
		value := func() string { d, _ := mi.Get(key); return string(d.Value) }
		waitFor(t, "the first document", 10*time.Second, mi.Changed, func() bool { return value() == "100" && !mi.Stale() })
		link.Cut()
		waitFor(t, "a to report stale", 10*time.Second, a.HealthChanged, func() bool { return a.Health().Stale() })
		waitFor(t, "the mirror to report stale", 5*time.Second, mi.Changed, mi.Stale)
		if h := a.Health(); h.Reachable || h.Err == "" {
			t.Fatalf("health while cut off: %+v", h)
		}
		if v := gauge("baton.fleet.stale"); v != 1 {
			t.Fatalf("baton.fleet.stale = %d while cut off, want 1", v)
		}
		rev, err := writer.Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: key, Value: []byte("500"), Prev: fleet.Any}}})
		if err != nil {
			t.Fatal(err)
		}
		if v := value(); v != "100" {
			t.Fatalf("a cut-off member's copy changed to %q", v)
		}
		link.Restore()
		waitFor(t, "a to catch up", 20*time.Second, mi.Changed, func() bool { return value() == "500" && !mi.Stale() && mi.Revision() >= rev })
		if a.Health().Stale() {
			t.Fatalf("caught up but stale: %+v", a.Health())
		}
		if v := gauge("baton.fleet.stale"); v != 0 {
			t.Fatalf("baton.fleet.stale = %d after catching up, want 0", v)
		}
	})
}

// TestCommandAppliedOnce: a driver applied a command and died before
// answering it. The next driver must find the effect in the stored state
// and answer "accepted" without applying it again (a second pause would be
// refused as "already paused").
func TestCommandAppliedOnce(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ns := namespace(t)
		e := b.open(t, b.addr)
		a := join(t, e, ns, "a", "v1")
		drive, err := fleet.DriveRollout(fleet.RolloutOptions{Plan: func(l *fleet.Lead) (rollout.Plan, error) {
			return rollout.Plan{ID: "once", Steps: []rollout.Step{rollout.PauseUntilPromoted()}}, nil
		}})
		if err != nil {
			t.Fatal(err)
		}
		run := func(m *fleet.Member) func() {
			d, err := fleet.NewDriver(m, fleet.DriverOptions{Drive: drive})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { defer close(done); d.Run(ctx) }()
			return func() { cancel(); <-done }
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		// A command written as a sender would, under a lease of its own so
		// that nobody deletes it after the answer.
		l, err := e.Grant(ctx, testTTL)
		if err != nil {
			t.Fatal(err)
		}
		key := a.Layout().Commands("once") + "op-1"
		req, _ := json.Marshal(fleet.Command{Command: rollout.CmdPause, From: "op", At: time.Now()})
		if _, err := e.Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: key, Value: req, Lease: l.ID()}}}); err != nil {
			t.Fatal(err)
		}
		answer := func() fleet.Command {
			var c fleet.Command
			testchild.Eventually(t, "the driver's answer", 20*time.Second, 20*time.Millisecond, func() error {
				d, err := e.Get(ctx, key)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(d.Value, &c); err != nil || !c.Done {
					return fmt.Errorf("not answered: %s", d.Value)
				}
				return nil
			})
			return c
		}
		stop := run(a)
		if c := answer(); !c.Accepted || c.By != "a" {
			t.Fatalf("first answer %+v", c)
		}
		stop()
		// Undo the answer, as if a had died between applying and answering.
		d, err := e.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.Commit(ctx, fleet.Txn{Ops: []fleet.Op{{Key: key, Value: req, Prev: d.Revision, Lease: l.ID()}}}); err != nil {
			t.Fatal(err)
		}
		bm := join(t, b.open(t, b.addr), ns, "b", "v1")
		a.Close()
		defer run(bm)()
		if c := answer(); !c.Accepted || c.By != "b" {
			t.Fatalf("the command was applied again (answer %+v): a pause applied twice is refused as already paused", c)
		}
	})
}

// TestBadPlanStepsDown: a member that cannot build its plan steps down
// instead of holding the leadership idle, and another member drives.
func TestBadPlanStepsDown(t *testing.T) {
	b := etcdBackend(t)
	ns := namespace(t)
	a := join(t, b.open(t, b.addr), ns, "a", "v1")
	drive, err := fleet.DriveRollout(fleet.RolloutOptions{Plan: func(*fleet.Lead) (rollout.Plan, error) {
		return rollout.Plan{}, errors.New("no plan here")
	}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := fleet.NewDriver(a, fleet.DriverOptions{Drive: drive})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := d.Run(ctx); !errors.Is(err, fleet.ErrStepDown) || !strings.Contains(err.Error(), "no plan here") {
		t.Fatalf("Run with a plan that cannot be built: %v, want ErrStepDown with the cause", err)
	}
	bm := join(t, b.open(t, b.addr), ns, "b", "v1")
	leads, _ := leader(t, bm)
	awaitLead(t, leads, testTTL, "b after a stepped down (less than a TTL: a resigned)")
}

// TestWaitOldGoneFleetWide: a wait-old-gone step on the fleet registry
// waits for an old version on another host, and the step after it (a
// migration's contract, say) runs only once that host has left.
func TestWaitOldGoneFleetWide(t *testing.T) {
	b := etcdBackend(t)
	ns := namespace(t)
	old := join(t, b.open(t, b.addr), ns, "old", "v1")
	cur := join(t, b.open(t, b.addr), ns, "new", "v2")
	contracted := make(chan time.Time, 1)
	drive, err := fleet.DriveRollout(fleet.RolloutOptions{Plan: func(l *fleet.Lead) (rollout.Plan, error) {
		return rollout.Plan{ID: "contract", Steps: []rollout.Step{
			rollout.WaitOldGone(l.Member().Registry(), "v2", 20*time.Millisecond),
			rollout.Hook(func(context.Context, rollout.HookEvent) error { contracted <- time.Now(); return nil }, rollout.HookOptions{}).Named("contract"),
		}}, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	d, err := fleet.NewDriver(cur, fleet.DriverOptions{Drive: drive})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "new to lead", 10*time.Second, d.Changed, func() bool { _, ok := d.Leading(); return ok })
	select {
	case <-contracted:
		t.Fatal("the contract ran while a v1 instance was alive on another host")
	case <-time.After(500 * time.Millisecond): // 25 polls of the registry
	}
	lctx, lcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer lcancel()
	left := time.Now()
	if err := old.Leave(lctx); err != nil {
		t.Fatal(err)
	}
	select {
	case at := <-contracted:
		t.Logf("contract ran %s after the last v1 instance left", at.Sub(left).Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		t.Fatal("the contract did not run after the last v1 instance left")
	}
}

// TestLeaveKeepsSuccessorRecord: a process hands over to a successor with
// the same member ID, which registers, then the predecessor Leaves. Its
// lease goes, and nothing of it may register again over the successor's
// record: the successor stays listed, with its version, past a lease TTL.
func TestLeaveKeepsSuccessorRecord(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ns := namespace(t)
		pred := join(t, b.open(t, b.addr), ns, "h1", "v1")
		succ := join(t, b.open(t, b.addr), ns, "h1", "v2")
		reg := succ.Registry()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		version := func() string {
			live, err := reg.Live(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, mi := range live {
				if mi.ID == "h1" {
					return mi.Version
				}
			}
			return ""
		}
		if v := version(); v != "v2" {
			t.Fatalf("h1 listed as %q after the successor joined, want v2", v)
		}
		if err := pred.Leave(ctx); err != nil {
			t.Fatal(err)
		}
		// A record the predecessor wrote back would be listed as v1 at
		// once, and gone one TTL after its process stopped renewing.
		until := time.Now().Add(testTTL + time.Second)
		for time.Now().Before(until) {
			if v := version(); v != "v2" {
				t.Fatalf("h1 listed as %q after the predecessor left, want the successor's v2", v)
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}
