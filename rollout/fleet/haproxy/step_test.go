package haproxy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/fleet/haproxy"
	"github.com/batonhq/baton/rollout/fleet/haproxy/haproxytest"
)

func verdict(v rollout.Verdict) rollout.Analyzer {
	return rollout.AnalyzerFunc(func(context.Context) (rollout.Verdict, string, error) { return v, v.String(), nil })
}

// [start green, switch, analyze (fails)]: the rollback flips back, and
// blue serves again with no failed request.
func TestStepRollbackFlipsBack(t *testing.T) {
	r := newRig(t, 5*time.Millisecond, haproxy.SwitchOptions{})
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var startedGreen, stoppedGreen int
	plan := rollout.Plan{ID: "bg-v2", Steps: []rollout.Step{
		rollout.Hook(func(context.Context, rollout.HookEvent) error { startedGreen++; return nil },
			rollout.HookOptions{OnRollback: func(context.Context, rollout.HookEvent) error { stoppedGreen++; return nil }}).Named("start-green"),
		r.sw.Step(),
		rollout.Analyze(verdict(rollout.Fail), rollout.AnalysisOptions{}),
	}}
	ctx := context.Background()
	ro, err := rollout.New(ctx, plan, rollout.Options{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	load := haproxytest.StartLoad(r.url, 4)
	await(t, "blue serving", func() bool { return served(r.blue) >= 20 })
	g := served(r.green)
	runErr := ro.Run(ctx)
	flipped := time.Now()
	b := served(r.blue)
	await(t, "blue serving after the rollback", func() bool { return served(r.blue) >= b+20 })
	reqs := load.Stop()

	st := ro.Status()
	if st.Phase != rollout.PhaseRolledBack || st.Steps[1].Name != "haproxy-switch-app" || st.Steps[1].Status != rollout.StepRolledBack {
		t.Fatalf("run: %v; phase %s, step %q %s; want the switch rolled back (%s)", runErr, st.Phase, st.Steps[1].Name, st.Steps[1].Status, st.Reason)
	}
	if startedGreen != 1 || stoppedGreen != 1 {
		t.Errorf("start-green ran %d times, its rollback %d; want 1 and 1", startedGreen, stoppedGreen)
	}
	if served(r.green) == g {
		t.Error("green never served between the switch and the rollback")
	}
	checkServing(t, r.p.Client(), "blue")
	checkAll(t, "after the rollback", haproxytest.StartedAfter(reqs, flipped), "v1")
	if f := haproxytest.Failed(reqs); len(f) > 0 {
		t.Errorf("%d of %d requests failed; first: %v", len(f), len(reqs), f[0].Err)
	}
}

// A driver that dies in the middle of the switch (here: its context ends
// while blue drains) leaves the step running; the next driver runs it
// again and it completes.
func TestStepRerunAfterInterruption(t *testing.T) {
	r := newRig(t, time.Second, haproxy.SwitchOptions{})
	dir := t.TempDir()
	plan := rollout.Plan{ID: "bg-rerun", Steps: []rollout.Step{r.sw.Step(), rollout.Analyze(verdict(rollout.Pass), rollout.AnalysisOptions{})}}
	open := func(ctx context.Context) *rollout.Rollout {
		store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		ro, err := rollout.New(ctx, plan, rollout.Options{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		return ro
	}
	load := haproxytest.StartLoad(r.url, 4)
	await(t, "requests in progress on blue", func() bool { return inFlight(r.blue) >= 2 })

	ctx, cancel := context.WithCancel(context.Background())
	first := open(ctx)
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	await(t, "blue draining", func() bool {
		st := statuses(t, r.p.Client())
		return st["blue1"] == "DRAIN" && st["blue2"] == "DRAIN"
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("first driver: %v; want context.Canceled", err)
	}

	second := open(context.Background())
	if err := second.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	n := inFlight(r.blue)
	reqs := load.Stop()
	st := second.Status()
	if st.Phase != rollout.PhaseSucceeded || st.Steps[0].Attempts != 2 {
		t.Errorf("phase %s, switch attempts %d; want succeeded after 2 attempts", st.Phase, st.Steps[0].Attempts)
	}
	if n != 0 {
		t.Errorf("the re-run switch ended with %d requests on blue", n)
	}
	checkServing(t, r.p.Client(), "green")
	if f := haproxytest.Failed(reqs); len(f) > 0 {
		t.Errorf("%d of %d requests failed; first: %v", len(f), len(reqs), f[0].Err)
	}
}
