package rollout_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
)

func TestCanaryStrategyRollsBackWeightOnFailedAnalysis(t *testing.T) {
	e := newEnv(t)
	steps, err := rollout.Canary(e.w, rollout.CanaryOptions{Weights: []uint32{100, 500, 2500, 10000}, Pause: time.Minute, Analyzer: e.a})
	if err != nil {
		t.Fatal(err)
	}
	e.a.SetVerdicts(rollout.Pass, rollout.Fail)
	r := e.rollout(rollout.Plan{ID: "canary", Steps: steps}, "")
	wantErrIs(t, e.run(r, time.Minute), rollout.ErrRolledBack)
	wantCalls(t, e.rec.Calls(), "weight 100", "analyze", "weight 500", "analyze", "weight 0", "weight 0")
	if e.w.Weight() != 0 {
		t.Fatal("canary weight not back to 0")
	}
	if !strings.Contains(r.Status().Reason, `step "canary-analysis-500" (analyze) failed`) {
		t.Fatal(r.Status().Reason)
	}
	if _, err := rollout.Canary(e.w, rollout.CanaryOptions{}); err == nil {
		t.Fatal("canary with no weights accepted")
	}
}

func TestExpandContractChoreography(t *testing.T) {
	e := newEnv(t)
	steps, err := rollout.ExpandContract(rollout.ExpandContractOptions{
		Migrator: e.m, Migration: "users_email",
		Deploy: []rollout.Step{rollout.Upgrade(e.up, "v2").Named("deploy")},
		Flags:  e.f, DualWriteFlag: "users-email-dual-write",
		ReadFlag: "users-email-read-new", ReadPercentages: []float64{10, 100}, Analyzer: e.a,
		Registry: e.reg, Version: "v2",
	})
	if err != nil {
		t.Fatal(err)
	}
	plan := rollout.Plan{ID: "expand-contract", Steps: steps}
	wantErrIs(t, runBounded(t, e.rollout(plan, "v1")), rollout.ErrHandedOff)
	e.reg.SetOld(1) // the old process is still draining
	r := e.rollout(plan, "v2")
	wait, _ := start(t, r)
	ctx := bounded(t)
	for range 2 { // two ramp intervals
		if err := e.clock.AdvanceWhenWaiting(ctx, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, r, "waiting for old versions", func(st rollout.Status) bool {
		return strings.Contains(decisions(st), "1 instance(s) of older versions still alive")
	})
	if e.rec.Count("migration users_email complete") != 0 {
		t.Fatal("contracted while v1 runs")
	}
	e.reg.SetOld(0)
	if err := e.clock.AdvanceWhenWaiting(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(),
		"migration users_email start", "upgrade v2",
		"flag users-email-dual-write 100",
		"migration users_email backfill",
		"flag users-email-read-new 10", "analyze", "flag users-email-read-new 100", "analyze",
		"migration users_email switch-reads",
		"registry", "registry",
		"migration users_email complete")
	if _, err := rollout.ExpandContract(rollout.ExpandContractOptions{}); err == nil {
		t.Fatal("empty options accepted")
	}
}

// A failure before the contract rolls the whole expand-contract back:
// reads back on the old column, dual write off, migration rolled back.
func TestExpandContractRollbackBeforeContract(t *testing.T) {
	e := newEnv(t)
	steps, err := rollout.ExpandContract(rollout.ExpandContractOptions{
		Migrator: e.m, Migration: "m", Flags: e.f, DualWriteFlag: "dw", ReadFlag: "rd",
		ReadPercentages: []float64{50, 100}, Analyzer: e.a, Registry: e.reg, Version: "v2",
	})
	if err != nil {
		t.Fatal(err)
	}
	e.a.SetVerdicts(rollout.Fail)
	r := e.rollout(rollout.Plan{ID: "ec-fail", Steps: steps}, "v2")
	wantErrIs(t, e.run(r, time.Hour), rollout.ErrRolledBack)
	wantCalls(t, after(e.rec.Calls(), "analyze"), "flag rd off", "migration m rollback", "flag dw off", "migration m rollback")
}

func TestBlueGreenStrategyHooks(t *testing.T) {
	e := newEnv(t)
	hook := func(name string) rollout.HookFunc {
		return func(ctx context.Context, ev rollout.HookEvent) error { return e.rec.Record(ctx, name) }
	}
	plan := rollout.Plan{ID: "bg-strategy", Steps: rollout.BlueGreenStrategy(e.up, "v2", rollout.BakeOptions{Window: time.Minute}, hook("pre"), hook("post"))}
	wantErrIs(t, runBounded(t, e.rollout(plan, "v1")), rollout.ErrHandedOff)
	if err := e.run(e.rollout(plan, "v2"), time.Minute); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(), "pre", "upgrade v2", "bake-promote", "post")
}

// ProgressiveFlag ramps the flag through its percentages with an analysis
// after each; a failed analysis turns the flag off and rolls back.
func TestProgressiveFlagStrategy(t *testing.T) {
	build := func(e *env) []rollout.Step {
		steps := rollout.ProgressiveFlag(e.f, "new-checkout", rollout.RampOptions{Percentages: []float64{10, 50, 100}, Interval: time.Minute, Analyzer: e.a})
		if len(steps) != 1 || steps[0].Name != "flag-new-checkout" {
			t.Fatalf("steps %+v", steps)
		}
		return steps
	}
	t.Run("all analyses pass", func(t *testing.T) {
		e := newEnv(t)
		r := e.rollout(rollout.Plan{ID: "pflag-ok", Steps: build(e)}, "")
		if err := e.run(r, time.Minute); err != nil {
			t.Fatal(err)
		}
		wantCalls(t, e.rec.Calls(), "flag new-checkout 10", "analyze", "flag new-checkout 50", "analyze", "flag new-checkout 100", "analyze")
		if p, on := e.f.Percentage("new-checkout"); !on || p != 100 {
			t.Fatalf("flag at %v (on %v), want 100", p, on)
		}
		if st := r.Status(); st.Steps[0].Progress != 3 || st.Phase != rollout.PhaseSucceeded {
			t.Fatalf("progress %d, phase %s", st.Steps[0].Progress, st.Phase)
		}
	})
	t.Run("failed analysis turns the flag off", func(t *testing.T) {
		e := newEnv(t)
		e.a.SetVerdicts(rollout.Pass, rollout.Fail)
		r := e.rollout(rollout.Plan{ID: "pflag-fail", Steps: build(e)}, "")
		wantErrIs(t, e.run(r, time.Minute), rollout.ErrRolledBack)
		wantCalls(t, e.rec.Calls(), "flag new-checkout 10", "analyze", "flag new-checkout 50", "analyze", "flag new-checkout off")
		if _, on := e.f.Percentage("new-checkout"); on {
			t.Fatal("flag still on after the rollback")
		}
		st := r.Status()
		if st.Steps[0].Status != rollout.StepRolledBack || !strings.Contains(st.Steps[0].Error, "analysis fail") {
			t.Fatalf("step %s, error %q", st.Steps[0].Status, st.Steps[0].Error)
		}
	})
}
