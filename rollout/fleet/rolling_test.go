package fleet_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet"
)

func TestRollingBatches(t *testing.T) {
	b := etcdBackend(t)
	m := join(t, b.open(t, b.addr), namespace(t), "d", "driver")
	leads, _ := leader(t, m)
	l := awaitLead(t, leads, 10*time.Second, "the driver")
	pass := rollout.AnalyzerFunc(func(context.Context) (rollout.Verdict, string, error) { return rollout.Pass, "", nil })
	steps, err := fleet.Rolling(l, fleet.RollingOptions{
		Hosts: []string{"h1", "h2", "h3", "h4", "h5"}, Canary: []string{"h4"}, MaxUnavailable: 2,
		Version: "v2", Previous: "v1", Analyzer: pass,
	})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range steps {
		got = append(got, s.Name+": "+s.Describe())
	}
	want := []string{
		"fleet-v2-batch-0: replace h4 with v2",
		"fleet-v2-analysis-0: analysis",
		"fleet-v2-batch-1: replace h1, h2 with v2",
		"fleet-v2-analysis-1: analysis",
		"fleet-v2-batch-2: replace h3, h5 with v2",
		"fleet-v2-analysis-2: analysis",
	}
	if len(got) != len(want) {
		t.Fatalf("steps:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("step %d: %q, want it to start %q", i, got[i], want[i])
		}
	}
	for _, bad := range []fleet.RollingOptions{
		{Version: "v2", Previous: "v1"},
		{Hosts: []string{"h1"}, Version: "../v2", Previous: "v1"},
		{Hosts: []string{"h1", "h1"}, Version: "v2", Previous: "v1"},
		{Hosts: []string{"h1"}, Canary: []string{"h9"}, Version: "v2", Previous: "v1"},
		{Hosts: []string{"a/b"}, Version: "v2", Previous: "v1"},
		{Hosts: []string{"h1"}, Version: "v2", Previous: "v1", MaxUnavailable: -1},
	} {
		if _, err := fleet.Rolling(l, bad); err == nil {
			t.Errorf("Rolling(%+v) was accepted", bad)
		}
	}
}

// TestRollingWaitsForRoom: with MaxUnavailable 1 and a host that has no
// live process, the batch of another host does not start: no desired
// for v2 is written, and the step fails once HealthTimeout passes.
func TestRollingWaitsForRoom(t *testing.T) {
	eachBackend(t, func(t *testing.T, b *backend) {
		ns := namespace(t)
		h := join(t, b.open(t, b.addr), ns, "h1", "v1")
		a, err := fleet.NewAgent(h, fleet.AgentOptions{Upgrader: refusingUpgrader{}, Binaries: anyBinary{}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		ran := make(chan error, 1)
		actx, stop := context.WithCancel(ctx)
		go func() { ran <- a.Run(actx) }()
		defer func() { stop(); <-ran }()

		d := join(t, b.open(t, b.addr), ns, "d", "driver")
		leads, _ := leader(t, d)
		l := awaitLead(t, leads, 10*time.Second, "the driver")
		steps, err := fleet.Rolling(l, fleet.RollingOptions{Hosts: []string{"h1", "h2"}, Version: "v2", Previous: "v1", HealthTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		r, err := rollout.New(ctx, rollout.Plan{ID: "no-room", Steps: steps}, rollout.Options{Store: l.Store()})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Run(ctx); !errors.Is(err, rollout.ErrRolledBack) {
			t.Fatalf("Run = %v, want ErrRolledBack", err)
		}
		if e := r.Status().Steps[0].Error; !strings.Contains(e, "no room to replace h1") || !strings.Contains(e, "[h2]") {
			t.Fatalf("the batch's error %q does not say that h2 leaves no room", e)
		}
		// The rollback puts v1 back on the batch; v2 was never asked for.
		if des, err := fleet.ReadDesired(ctx, d.Engine(), d.Layout(), "h1"); err != nil || des.Version != "v1" {
			t.Fatalf("h1's desired state: %+v, %v; want v1, from the rollback", des, err)
		}
	})
}
