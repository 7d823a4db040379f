package rollout_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/rollouttest"
)

// A canary failure after a promoted bake rolls back to the blue-green
// step, a point of no return, and ends rolled back (not failed): the old
// process is gone, so nothing is handed back, and the new version keeps
// serving with its canary at 0. On the previous runner the rollback tried
// to hand back to the exited old process.
func TestCanaryFailureAfterPromotedBakeEndsRolledBack(t *testing.T) {
	e := newEnv(t)
	e.a.SetVerdicts(rollout.Pass, rollout.Pass, rollout.Fail)
	plan := rollout.Plan{ID: "after-promotion", Steps: []rollout.Step{
		rollout.BlueGreen(e.up, "v2", rollout.BakeOptions{Window: 2 * time.Minute, Interval: time.Minute, Analyzers: []rollout.Analyzer{e.a}}).Named("bg"),
		rollout.SetWeight(e.w, 1000).Named("canary-10"),
		rollout.Analyze(e.a, rollout.AnalysisOptions{}).Named("check"),
		rollout.SetWeight(e.w, 10000).Named("canary-100"),
	}}
	wantErrIs(t, runBounded(t, e.rollout(plan, "v1")), rollout.ErrHandedOff)
	r := e.rollout(plan, "v2")
	wantErrIs(t, e.run(r, time.Minute), rollout.ErrRolledBack)
	wantCalls(t, e.rec.Calls(), "upgrade v2", "analyze", "analyze", "bake-promote", "weight 1000", "analyze", "weight 0")
	st := r.Status()
	if st.Phase != rollout.PhaseRolledBack || stepStatus(st, "bg") != rollout.StepSucceeded || !st.Steps[0].Promoted {
		t.Fatalf("phase %s, bg %s (promoted %v); want rolled-back, bg succeeded and promoted", st.Phase, stepStatus(st, "bg"), st.Steps[0].Promoted)
	}
	if d := decisions(st); !strings.Contains(d, "point of no return") || !strings.Contains(d, "rollback complete back to step \"bg\"") {
		t.Fatalf("no decision names the point of no return:\n%s", d)
	}
	// Retry starts after the point of no return; the upgrade is not
	// repeated.
	e.a.SetVerdicts(rollout.Pass)
	if err := r.Retry(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.run(r, time.Minute); err != nil {
		t.Fatal(err)
	}
	if n := e.rec.Count("upgrade v2"); n != 1 {
		t.Fatalf("upgraded %d times", n)
	}
}

// A bake whose analyses never judged anything (no traffic) does not
// promote: it fails and hands back to the old process. The previous
// runner promoted it ("no failed analysis").
func TestBakeWithNoDataDoesNotPass(t *testing.T) {
	e := newEnv(t)
	e.a.SetVerdicts(rollout.Inconclusive)
	plan := rollout.Plan{ID: "bake-no-data", Steps: []rollout.Step{
		rollout.BlueGreen(e.up, "v2", rollout.BakeOptions{Window: 3 * time.Minute, Interval: time.Minute, Analyzers: []rollout.Analyzer{e.a}}).Named("bg"),
	}}
	wantErrIs(t, runBounded(t, e.rollout(plan, "v1")), rollout.ErrHandedOff)
	r := e.rollout(plan, "v2")
	wantErrIs(t, e.run(r, time.Minute), rollout.ErrHandedOff)
	wantCalls(t, e.rec.Calls(), "upgrade v2", "analyze", "analyze", "analyze", "bake-rollback")
	if st := r.Status(); !strings.Contains(st.Reason, "0 of 3 round(s) conclusive (at least 1 required)") {
		t.Fatalf("reason %q does not say the bake was not conclusive", st.Reason)
	}
}

// An analysis whose measurements were all inconclusive does not pass,
// even when MaxInconclusive tolerates them: it needs MinConclusive, and
// the decision says so. The previous runner passed it ("3 measurement(s),
// 3 inconclusive").
func TestInconclusiveAnalysisDoesNotPassByDefault(t *testing.T) {
	e := newEnv(t)
	e.a.SetVerdicts(rollout.Inconclusive)
	r := e.rollout(rollout.Plan{ID: "inconclusive-tolerated", Steps: []rollout.Step{
		rollout.Analyze(e.a, rollout.AnalysisOptions{Count: 3, Interval: time.Minute, MaxInconclusive: 3}).Named("check"),
	}}, "")
	wait, _ := start(t, r)
	for range 2 {
		if err := e.clock.AdvanceWhenWaiting(bounded(t), time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, r, "check to wait for an operator, saying why", func(st rollout.Status) bool {
		return stepWaiting("check")(st) && strings.Contains(decisions(st), "analysis not conclusive: 0 of 3 measurement(s) conclusive (at least 1 required)")
	})
	if st := r.Status(); st.Phase != rollout.PhaseRunning || stepStatus(st, "check") != rollout.StepRunning {
		t.Fatalf("an inconclusive analysis passed: %s %s", st.Phase, stepStatus(st, "check"))
	}
	if err := r.Abort(context.Background(), "no traffic to judge"); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, wait(), rollout.ErrRolledBack)

	// One conclusive measurement of three passes.
	e2 := newEnv(t)
	e2.a.SetVerdicts(rollout.Inconclusive, rollout.Pass, rollout.Inconclusive)
	r2 := e2.rollout(rollout.Plan{ID: "one-conclusive", Steps: []rollout.Step{
		rollout.Analyze(e2.a, rollout.AnalysisOptions{Count: 3, Interval: time.Minute, MaxInconclusive: 2}),
	}}, "")
	if err := e2.run(r2, time.Minute); err != nil {
		t.Fatal(err)
	}
	if d := decisions(r2.Status()); !strings.Contains(d, "analysis passed: 1 of 3 measurement(s) conclusive (at least 1 required), 2 inconclusive (2 tolerated)") {
		t.Fatal(d)
	}
}

// A set-weight step before a blue-green step sets the weight the new
// process starts with: the old process records it (RecordWeight: its
// binary has no splitter for the new version) and the new one applies it
// with Restore before serving.
func TestStartWeightRecordedByOldAppliedByNew(t *testing.T) {
	e := newEnv(t)
	plan := func(w rollout.WeightSetter) rollout.Plan {
		return rollout.Plan{ID: "start-weight", Steps: []rollout.Step{
			rollout.SetWeight(w, 2000).Named("start-weight"),
			rollout.BlueGreen(e.up, "v2", rollout.BakeOptions{Window: time.Minute, Interval: time.Minute, Analyzers: []rollout.Analyzer{e.a}}).Named("bg"),
		}}
	}
	wantErrIs(t, runBounded(t, e.rollout(plan(rollout.RecordWeight), "v1")), rollout.ErrHandedOff)
	wantCalls(t, e.rec.Calls(), "upgrade v2")
	nw := e.rollout(plan(e.w), "v2")
	if err := nw.Restore(context.Background(), e.w); err != nil {
		t.Fatal(err)
	}
	if w := e.w.Weight(); w != 2000 {
		t.Fatalf("the new process starts at weight %d, want 2000", w)
	}
	if err := e.run(nw, time.Minute); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(), "upgrade v2", "weight 2000", "analyze", "bake-promote")
}

// countingAnalyzer is told how many looks the plan makes.
type countingAnalyzer struct {
	*rollouttest.Analyzer
	planned int
}

func (c *countingAnalyzer) PlanLooks(n int) { c.planned = n }

// New counts, for an alpha-spending analyzer, the looks of a full run:
// analyses, ramp percentages and bake rounds.
func TestLooksCountedForTheAnalyzer(t *testing.T) {
	e := newEnv(t)
	a := &countingAnalyzer{Analyzer: e.a}
	other := &countingAnalyzer{Analyzer: e.a}
	e.rollout(rollout.Plan{ID: "looks", Steps: []rollout.Step{
		rollout.Analyze(a, rollout.AnalysisOptions{Count: 3}),
		rollout.RampFlag(e.f, "f", rollout.RampOptions{Percentages: []float64{10, 50}, Analyzer: a}),
		rollout.BlueGreen(e.up, "v2", rollout.BakeOptions{Window: 3 * time.Minute, Interval: time.Minute, Analyzers: []rollout.Analyzer{a, other}}),
	}}, "v2")
	if a.planned != 3+2+3 || other.planned != 3 {
		t.Fatalf("planned looks %d and %d, want 8 and 3", a.planned, other.planned)
	}
}

// Default step names come from the kind and parameters: inserting a step
// does not rename the others (the previous "<index>-<kind>" names did).
func TestDefaultStepNamesStable(t *testing.T) {
	e := newEnv(t)
	names := func(steps ...rollout.Step) []string {
		r := e.rollout(rollout.Plan{ID: "names-" + strings.Repeat("x", len(steps)), Steps: steps}, "v1")
		var out []string
		for _, s := range r.Status().Steps {
			out = append(out, s.Name)
		}
		return out
	}
	base := names(rollout.SetWeight(e.w, 500), rollout.Pause(time.Minute), rollout.Pause(time.Minute), rollout.Analyze(e.a, rollout.AnalysisOptions{}))
	wantCalls(t, base, "set-weight-500", "pause-1m0s", "pause-1m0s-2", "analyze")
	inserted := names(rollout.Migration(e.m, "m", rollout.MigrationStart), rollout.SetWeight(e.w, 500), rollout.Pause(time.Minute), rollout.Pause(time.Minute), rollout.Analyze(e.a, rollout.AnalysisOptions{}))
	wantCalls(t, inserted[1:], base...)
}

// An abort's reason is said once: "aborted by operator", not "aborted by
// operator (aborted by operator)" when the step returns the cause itself.
func TestAbortReasonSaidOnce(t *testing.T) {
	e := newEnv(t)
	started := make(chan struct{})
	hold := func(ctx context.Context, ev rollout.HookEvent) error {
		close(started)
		<-ctx.Done()
		return context.Cause(ctx)
	}
	r := e.rollout(rollout.Plan{ID: "abort-once", Steps: []rollout.Step{rollout.Hook(hold, rollout.HookOptions{}).Named("hold")}}, "")
	wait, _ := start(t, r)
	select {
	case <-started:
	case <-time.After(runLimit):
		t.Fatal("the hook never started")
	}
	if err := r.Abort(context.Background(), "wrong build"); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, wait(), rollout.ErrRolledBack)
	if got := r.Status().Steps[0].Error; got != "aborted by operator" {
		t.Fatalf("step error %q, want \"aborted by operator\"", got)
	}
}

// A plan that contracts a migration while its canary weight is below 100%
// is refused: the old code inside the new binary still serves and would
// break on the dropped column.
func TestContractNeedsTheOldHandlerRetired(t *testing.T) {
	e := newEnv(t)
	_, err := rollout.New(context.Background(), rollout.Plan{ID: "contract-at-50", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 5000),
		rollout.Migration(e.m, "m", rollout.MigrationComplete),
	}}, rollout.Options{Store: e.store})
	wantErrIs(t, err, rollout.ErrInvalidPlan)
	if !strings.Contains(err.Error(), `contracts migration "m" while the canary weight is 50.00%`) {
		t.Fatal(err)
	}
}
