package rollout_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/rollouttest"
)

func TestEveryKindSucceeds(t *testing.T) {
	e := newEnv(t)
	t1 := &rollouttest.Target{Recorder: e.rec, ID: "t1"}
	t2 := &rollouttest.Target{Recorder: e.rec, ID: "t2"}
	rolling, err := rollout.Rolling([]rollout.Target{t1, t2}, "v2", "v1", rollout.RollingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hook := func(ctx context.Context, ev rollout.HookEvent) error {
		e.rec.SetBefore(nil)
		return nil
	}
	steps := []rollout.Step{
		rollout.Hook(hook, rollout.HookOptions{}).Named("pre-rollout"),
		rollout.Migration(e.m, "m", rollout.MigrationStart),
		rollout.SetWeight(e.w, 500),
		rollout.Pause(time.Minute),
		rollout.Analyze(e.a, rollout.AnalysisOptions{Count: 2}),
		rollout.RampFlag(e.f, "f", rollout.RampOptions{Percentages: []float64{10, 50, 100}, Analyzer: e.a}),
		rollout.Migration(e.m, "m", rollout.MigrationBackfill),
		rollout.WaitOldGone(e.reg, "v2", 0),
		// The old code retired before the contract (the plan checks it).
		rollout.SetWeight(e.w, 10000),
		rollout.Migration(e.m, "m", rollout.MigrationComplete),
	}
	steps = append(steps, rolling...)
	r := e.rollout(rollout.Plan{ID: "all-kinds", Steps: steps}, "v1")
	if err := e.run(r, time.Hour); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(),
		"migration m start", "weight 500", "analyze", "analyze",
		"flag f 10", "analyze", "flag f 50", "analyze", "flag f 100", "analyze",
		"migration m backfill", "registry", "weight 10000", "migration m complete",
		"replace t1 v2", "replace t2 v2")
	st := r.Status()
	if st.Phase != rollout.PhaseSucceeded {
		t.Fatalf("phase %q", st.Phase)
	}
	for _, s := range st.Steps {
		if s.Status != rollout.StepSucceeded || s.StartedAt.IsZero() || s.FinishedAt.IsZero() {
			t.Errorf("step %s: %s %v..%v", s.Name, s.Status, s.StartedAt, s.FinishedAt)
		}
	}
	if d := st.Steps[3].Duration(e.clock.Now()); d < time.Minute {
		t.Errorf("pause step lasted %s of fake time, want at least 1m", d)
	}
	// A finished rollout stays finished: Run again does nothing.
	if err := runBounded(t, r); err != nil {
		t.Fatal(err)
	}
	if n := len(e.rec.Calls()); n != 16 {
		t.Fatalf("second Run made calls: %d", n)
	}
}

// A failing step rolls back every completed step in reverse, each by its
// own rollback, and records why.
func TestFailureRollsBackEveryKindInReverse(t *testing.T) {
	e := newEnv(t)
	t1 := &rollouttest.Target{Recorder: e.rec, ID: "t1"}
	rolling, _ := rollout.Rolling([]rollout.Target{t1}, "v2", "v1", rollout.RollingOptions{})
	onRollback := func(ctx context.Context, ev rollout.HookEvent) error {
		return e.rec.Record(ctx, "hook rollback "+ev.Step)
	}
	steps := []rollout.Step{
		rollout.SetWeight(e.w, 500),
		rollout.Pause(time.Second),
		rollout.RampFlag(e.f, "f", rollout.RampOptions{Percentages: []float64{10}}),
		rollout.Migration(e.m, "m", rollout.MigrationStart),
		rollout.Migration(e.m, "m", rollout.MigrationBackfill),
		rollout.WaitOldGone(e.reg, "v2", 0),
		rollout.Hook(func(context.Context, rollout.HookEvent) error { return nil }, rollout.HookOptions{OnRollback: onRollback}).Named("notify"),
	}
	steps = append(steps, rolling...)
	steps = append(steps, rollout.Analyze(e.a, rollout.AnalysisOptions{}).Named("check"))
	e.a.SetVerdicts(rollout.Fail)
	r := e.rollout(rollout.Plan{ID: "rollback-all", Steps: steps}, "v1")
	err := e.run(r, time.Hour)
	wantErrIs(t, err, rollout.ErrRolledBack)
	wantCalls(t, after(e.rec.Calls(), "analyze"),
		"replace t1 v1", "hook rollback notify", "migration m rollback", "migration m rollback", "flag f off", "weight 0")
	st := r.Status()
	if st.Phase != rollout.PhaseRolledBack || !strings.Contains(st.Reason, `step "check" (analyze) failed: analysis fail`) {
		t.Fatalf("phase %s reason %q", st.Phase, st.Reason)
	}
	for _, s := range st.Steps {
		if s.Status != rollout.StepRolledBack || s.RollbackFinishedAt.IsZero() {
			t.Errorf("step %s: %s", s.Name, s.Status)
		}
	}
	if w := e.w.Weight(); w != 0 {
		t.Fatalf("weight %d after rollback", w)
	}
	if _, on := e.f.Percentage("f"); on {
		t.Fatal("flag still on after rollback")
	}
}

// A completed irreversible step is never rolled back, and the rollback
// stops there: what comes after the point of no return depends on it.
func TestRollbackStopsAtIrreversibleStep(t *testing.T) {
	e := newEnv(t)
	e.a.SetVerdicts(rollout.Fail)
	r := e.rollout(rollout.Plan{ID: "irrev", Steps: []rollout.Step{
		rollout.Migration(e.m, "m", rollout.MigrationStart),
		rollout.Migration(e.m, "m", rollout.MigrationComplete),
		rollout.SetWeight(e.w, 100),
		rollout.Analyze(e.a, rollout.AnalysisOptions{}),
	}}, "v1")
	wantErrIs(t, e.run(r, time.Hour), rollout.ErrRolledBack)
	wantCalls(t, e.rec.Calls(), "migration m start", "migration m complete", "weight 100", "analyze", "weight 0")
	st := r.Status()
	if stepStatus(st, "migration-m-complete") != rollout.StepSucceeded || stepStatus(st, "migration-m-start") != rollout.StepSucceeded {
		t.Fatalf("irreversible step or the one before it changed: %+v", st.Steps)
	}
	if !strings.Contains(decisions(st), "irreversible") {
		t.Fatalf("no decision explains the stop:\n%s", decisions(st))
	}
	// Retry starts after the irreversible step and never repeats it.
	e.a.SetVerdicts(rollout.Pass)
	if err := r.Retry(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.run(r, time.Hour); err != nil {
		t.Fatal(err)
	}
	if n := e.rec.Count("migration m complete"); n != 1 {
		t.Fatalf("complete ran %d times", n)
	}
	if n := e.rec.Count("migration m start"); n != 1 {
		t.Fatalf("start ran %d times", n)
	}
}

func TestAbortDuringPauseRollsBack(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "abort", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 1000),
		rollout.PauseUntilPromoted().Named("hold"),
		rollout.SetWeight(e.w, 5000),
	}}, "")
	wait, _ := start(t, r)
	waitFor(t, r, "hold waiting", stepWaiting("hold"))
	if err := r.Abort(context.Background(), "latency looks wrong"); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, wait(), rollout.ErrRolledBack)
	wantCalls(t, e.rec.Calls(), "weight 1000", "weight 0")
	st := r.Status()
	if !strings.Contains(st.Reason, "aborted by operator during step \"hold\": latency looks wrong") {
		t.Fatalf("reason %q", st.Reason)
	}
	// Commands on a finished rollout are refused with the reason.
	err := r.Promote(context.Background())
	var ce *rollout.CommandError
	if !errors.As(err, &ce) || !strings.Contains(ce.Reason, "rolled-back") {
		t.Fatalf("promote after rollback: %v", err)
	}
}

func TestPromoteEndsPauseAndIsRefusedOtherwise(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "promote", Steps: []rollout.Step{
		rollout.PauseUntilPromoted().Named("hold"),
		rollout.SetWeight(e.w, 10000),
	}}, "")
	err := r.Promote(context.Background())
	wantErrIs(t, err, rollout.ErrInvalidCommand)
	wait, _ := start(t, r)
	waitFor(t, r, "hold waiting", stepWaiting("hold"))
	if err := r.Promote(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(), "weight 10000")
	if !strings.Contains(decisions(r.Status()), "pause ended by operator promote") {
		t.Fatal(decisions(r.Status()))
	}
}

func TestPromoteFullSkipsWaits(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "full", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.PauseUntilPromoted().Named("hold"),
		rollout.Analyze(e.a, rollout.AnalysisOptions{}),
		rollout.Pause(time.Hour),
		rollout.RampFlag(e.f, "f", rollout.RampOptions{Percentages: []float64{1, 5, 25, 100}, Analyzer: e.a}),
		rollout.SetWeight(e.w, 10000),
	}}, "")
	wait, _ := start(t, r)
	waitFor(t, r, "hold waiting", stepWaiting("hold"))
	if err := r.PromoteFull(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, r.PromoteFull(context.Background()), rollout.ErrInvalidCommand)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(), "weight 100", "flag f 100", "weight 10000")
	st := r.Status()
	if stepStatus(st, "analyze") != rollout.StepSkipped || stepStatus(st, "pause-1h0m0s") != rollout.StepSkipped {
		t.Fatalf("%+v", st.Steps)
	}
}

func TestPauseResume(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "pause", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.SetWeight(e.w, 200),
	}}, "")
	ctx := context.Background()
	if err := r.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, r.Pause(ctx), rollout.ErrInvalidCommand)
	wait, _ := start(t, r)
	waitFor(t, r, "running and paused", func(st rollout.Status) bool { return st.Phase == rollout.PhaseRunning })
	if n := len(e.rec.Calls()); n != 0 {
		t.Fatalf("a paused rollout made %d calls", n)
	}
	if err := r.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, r.Resume(ctx), rollout.ErrInvalidCommand)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(), "weight 100", "weight 200")
}

// Pause between the units of a ramp: the ramp stops at a percentage and
// continues from it.
func TestPauseInsideRamp(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "pause-ramp", Steps: []rollout.Step{
		rollout.RampFlag(e.f, "f", rollout.RampOptions{Percentages: []float64{10, 20}, Analyzer: e.a}).Named("ramp"),
	}}, "")
	ctx := bounded(t)
	gate := make(chan struct{})
	e.rec.SetBefore(func(ctx context.Context, c string) error {
		if c == "analyze" {
			select {
			case <-gate:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	wait, _ := start(t, r)
	if err := e.clock.AdvanceWhenWaiting(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := r.Pause(ctx); err != nil {
		t.Fatal(err)
	}
	close(gate) // the first analysis finishes while paused
	waitFor(t, r, "ramp progress 1", func(st rollout.Status) bool { return st.Steps[0].Progress == 1 })
	if got := e.rec.Calls(); len(got) != 2 {
		t.Fatalf("ramp went on while paused: %v", got)
	}
	if err := r.Resume(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.clock.AdvanceWhenWaiting(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(), "flag f 10", "analyze", "flag f 20", "analyze")
}

func TestStepTimeoutFailsTheStep(t *testing.T) {
	e := newEnv(t)
	block := func(ctx context.Context, ev rollout.HookEvent) error { <-ctx.Done(); return ctx.Err() }
	r := e.rollout(rollout.Plan{ID: "timeout", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.Hook(block, rollout.HookOptions{}).WithTimeout(20 * time.Millisecond),
	}}, "")
	wantErrIs(t, runBounded(t, r), rollout.ErrRolledBack)
	if st := r.Status(); !strings.Contains(st.Reason, "step timed out after 20ms") {
		t.Fatalf("reason %q", st.Reason)
	}
	wantCalls(t, e.rec.Calls(), "weight 100", "weight 0")
}

// Cancelling Run leaves the rollout resumable: a new Rollout on the same
// store continues the pause for what was left of it.
func TestCancelAndResumePause(t *testing.T) {
	e := newEnv(t)
	plan := rollout.Plan{ID: "resume-pause", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.Pause(10 * time.Minute).Named("hold"),
		rollout.SetWeight(e.w, 200),
	}}
	r := e.rollout(plan, "")
	wait, cancel := start(t, r)
	ctx := bounded(t)
	if err := e.clock.WaitForWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(4 * time.Minute)
	cancel()
	wantErrIs(t, wait(), context.Canceled)
	if s := stepStatus(r.Status(), "hold"); s != rollout.StepRunning {
		t.Fatalf("hold is %s after cancel", s)
	}
	r2 := e.rollout(plan, "")
	wait2, _ := start(t, r2)
	if err := e.clock.WaitForWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(6*time.Minute - time.Nanosecond)
	if e.clock.Waiters() == 0 {
		t.Fatal("resumed pause ended before its 10 minutes")
	}
	e.clock.Advance(time.Nanosecond)
	if err := wait2(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(), "weight 100", "weight 200")
}

func TestAnalysisInconclusiveWaitsForOperator(t *testing.T) {
	e := newEnv(t)
	e.a.SetVerdicts(rollout.Inconclusive)
	r := e.rollout(rollout.Plan{ID: "inconclusive", Steps: []rollout.Step{
		rollout.Analyze(e.a, rollout.AnalysisOptions{}).Named("check"),
	}}, "")
	wait, _ := start(t, r)
	waitFor(t, r, "check waiting", stepWaiting("check"))
	if err := r.Promote(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(decisions(r.Status()), "inconclusive analysis accepted by operator promote") {
		t.Fatal(decisions(r.Status()))
	}

	e2 := newEnv(t)
	e2.a.SetVerdicts(rollout.Inconclusive)
	r2 := e2.rollout(rollout.Plan{ID: "inconclusive-fail", Steps: []rollout.Step{
		rollout.Analyze(e2.a, rollout.AnalysisOptions{FailInconclusive: true}),
	}}, "")
	wantErrIs(t, runBounded(t, r2), rollout.ErrRolledBack)
}

func TestUpgradeHandoffBetweenProcessVersions(t *testing.T) {
	e := newEnv(t)
	plan := rollout.Plan{ID: "handoff", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.Upgrade(e.up, "v2").Named("upgrade"),
		rollout.SetWeight(e.w, 10000),
	}}
	old := e.rollout(plan, "v1")
	wantErrIs(t, runBounded(t, old), rollout.ErrHandedOff)
	wantCalls(t, e.rec.Calls(), "weight 100", "upgrade v2")
	// The new process loads the state and takes over without upgrading again.
	nw := e.rollout(plan, "v2")
	if err := runBounded(t, nw); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(), "weight 100", "upgrade v2", "weight 10000")
	if d := decisions(nw.Status()); !strings.Contains(d, "version v2 took over the rollout after the handoff from v1") {
		t.Fatal(d)
	}
	// The old process's Rollout has lost the drive: its state is stale.
	wantErrIs(t, old.Abort(context.Background(), "late"), rollout.ErrConflict)
}

func TestBlueGreenBakeFailureHandsBackToOldProcess(t *testing.T) {
	e := newEnv(t)
	e.a.SetVerdicts(rollout.Pass, rollout.Fail)
	plan := rollout.Plan{ID: "bluegreen", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.BlueGreen(e.up, "v2", rollout.BakeOptions{Window: 10 * time.Minute, Interval: time.Minute, Analyzers: []rollout.Analyzer{e.a}}).Named("bg"),
	}}
	old := e.rollout(plan, "v1")
	wantErrIs(t, runBounded(t, old), rollout.ErrHandedOff)
	nw := e.rollout(plan, "v2")
	wantErrIs(t, e.run(nw, time.Minute), rollout.ErrHandedOff)
	wantCalls(t, e.rec.Calls(), "weight 100", "upgrade v2", "analyze", "analyze", "bake-rollback")
	// graceful resumes the old process, which runs again and finishes
	// the rollback there.
	old2 := e.rollout(plan, "v1")
	wantErrIs(t, runBounded(t, old2), rollout.ErrRolledBack)
	wantCalls(t, after(e.rec.Calls(), "bake-rollback"), "weight 0")
	st := old2.Status()
	if stepStatus(st, "bg") != rollout.StepRolledBack || !strings.Contains(st.Reason, "analysis fail") {
		t.Fatalf("%s %q", stepStatus(st, "bg"), st.Reason)
	}
}

func TestBlueGreenBakePassPromotes(t *testing.T) {
	e := newEnv(t)
	plan := rollout.Plan{ID: "bluegreen-ok", Steps: []rollout.Step{
		rollout.BlueGreen(e.up, "v2", rollout.BakeOptions{Window: 3 * time.Minute, Interval: time.Minute, Analyzers: []rollout.Analyzer{e.a}}),
	}}
	wantErrIs(t, runBounded(t, e.rollout(plan, "v1")), rollout.ErrHandedOff)
	if err := e.run(e.rollout(plan, "v2"), time.Minute); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(), "upgrade v2", "analyze", "analyze", "analyze", "bake-promote")
}

// If the new process dies after the handoff, the old one gets the drive
// back (graceful resumes it) and rolls back instead of upgrading again.
func TestNewProcessLostAfterHandoffRollsBack(t *testing.T) {
	e := newEnv(t)
	plan := rollout.Plan{ID: "lost", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.BlueGreen(e.up, "v2", rollout.BakeOptions{Window: time.Hour}).Named("bg"),
	}}
	wantErrIs(t, runBounded(t, e.rollout(plan, "v1")), rollout.ErrHandedOff)
	nw := e.rollout(plan, "v2")
	wait, cancel := start(t, nw)
	waitFor(t, nw, "bake waiting", stepWaiting("bg"))
	// Stands for the new process's death: it stops without a word (the
	// kill -9 tests do it for real).
	cancel()
	wantErrIs(t, wait(), context.Canceled)
	old := e.rollout(plan, "v1")
	wantErrIs(t, runBounded(t, old), rollout.ErrRolledBack)
	if !strings.Contains(old.Status().Reason, "took over and is gone") {
		t.Fatal(old.Status().Reason)
	}
	if e.rec.Count("upgrade v2") != 1 {
		t.Fatal("upgraded again")
	}
}

func TestPlainUpgradeIrreversibleWithoutDowngrader(t *testing.T) {
	e := newEnv(t)
	one := &rollouttest.OneWayUpgrader{Recorder: e.rec, To: "v2"}
	if !rollout.Upgrade(one, "v2").Irreversible() {
		t.Fatal("an upgrade with no Downgrader must be irreversible")
	}
	if rollout.Upgrade(e.up, "v2").Irreversible() {
		t.Fatal("an upgrade with a Downgrader is reversible")
	}
	e.a.SetVerdicts(rollout.Fail)
	plan := rollout.Plan{ID: "downgrade", Steps: []rollout.Step{
		rollout.Upgrade(e.up, "v2"),
		rollout.Analyze(e.a, rollout.AnalysisOptions{}),
	}}
	wantErrIs(t, runBounded(t, e.rollout(plan, "v1")), rollout.ErrHandedOff)
	wantErrIs(t, runBounded(t, e.rollout(plan, "v2")), rollout.ErrHandedOff)
	wantErrIs(t, runBounded(t, e.rollout(plan, "v1")), rollout.ErrRolledBack)
	wantCalls(t, e.rec.Calls(), "upgrade v2", "analyze", "downgrade")
}

func TestConflictingRunnersStop(t *testing.T) {
	e := newEnv(t)
	plan := rollout.Plan{ID: "conflict", Steps: []rollout.Step{rollout.SetWeight(e.w, 100)}}
	a := e.rollout(plan, "")
	b := e.rollout(plan, "")
	if err := runBounded(t, a); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, runBounded(t, b), rollout.ErrConflict)
	if n := e.rec.Count("weight 100"); n != 1 {
		t.Fatalf("step ran %d times", n)
	}
}

func TestRunTwiceConcurrentlyRefused(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "twice", Steps: []rollout.Step{rollout.PauseUntilPromoted().Named("hold")}}, "")
	wait, _ := start(t, r)
	waitFor(t, r, "hold waiting", stepWaiting("hold"))
	wantErrIs(t, runBounded(t, r), rollout.ErrRunning)
	if err := r.Promote(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
}

func TestPlanValidation(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	o := rollout.Options{Store: e.store}
	cases := map[string]struct {
		p    rollout.Plan
		want string
	}{
		"bad id":      {rollout.Plan{ID: "../x", Steps: []rollout.Step{rollout.Pause(0)}}, "invalid rollout id"},
		"no steps":    {rollout.Plan{ID: "x"}, "no steps"},
		"zero step":   {rollout.Plan{ID: "x", Steps: []rollout.Step{{}}}, "step 0"},
		"weight":      {rollout.Plan{ID: "x", Steps: []rollout.Step{rollout.SetWeight(e.w, 10001)}}, "outside 0..10000"},
		"percentage":  {rollout.Plan{ID: "x", Steps: []rollout.Step{rollout.RampFlag(e.f, "f", rollout.RampOptions{Percentages: []float64{10, 101}})}}, "percentage 1 (101)"},
		"duplicate":   {rollout.Plan{ID: "x", Steps: []rollout.Step{rollout.Pause(0).Named("a"), rollout.Pause(0).Named("a")}}, "already used by step 0"},
		"no version":  {rollout.Plan{ID: "x", Steps: []rollout.Step{rollout.Upgrade(e.up, "v2")}}, "Options.Version is required"},
		"no bake":     {rollout.Plan{ID: "x", Steps: []rollout.Step{rollout.BlueGreen(&rollouttest.OneWayUpgrader{}, "v2", rollout.BakeOptions{})}}, "BakeController"},
		"phase":       {rollout.Plan{ID: "x", Steps: []rollout.Step{rollout.Migration(e.m, "m", "explode")}}, `unknown migration phase "explode"`},
		"nil analyze": {rollout.Plan{ID: "x", Steps: []rollout.Step{rollout.Analyze(nil, rollout.AnalysisOptions{})}}, "nil Analyzer"},
	}
	for name, c := range cases {
		_, err := rollout.New(ctx, c.p, o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want %q", name, err, c.want)
		}
	}
	// A stored rollout with another plan is refused.
	if _, err := rollout.New(ctx, rollout.Plan{ID: "same", Steps: []rollout.Step{rollout.Pause(0)}}, o); err != nil {
		t.Fatal(err)
	}
	_, err := rollout.New(ctx, rollout.Plan{ID: "same", Steps: []rollout.Step{rollout.SetWeight(e.w, 1)}}, o)
	wantErrIs(t, err, rollout.ErrPlanChanged)
}

func TestRollingBatchesAndRollback(t *testing.T) {
	e := newEnv(t)
	var ts []rollout.Target
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		ts = append(ts, &rollouttest.Target{Recorder: e.rec, ID: n, Unhealthy: func(v string) bool { return n == "e" && v == "v2" }})
	}
	steps, err := rollout.Rolling(ts, "v2", "v1", rollout.RollingOptions{MaxUnavailable: 2, HealthTimeout: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 3 {
		t.Fatalf("%d batches for 5 targets with maxUnavailable 2", len(steps))
	}
	r := e.rollout(rollout.Plan{ID: "rolling", Steps: steps}, "")
	wantErrIs(t, e.run(r, time.Second), rollout.ErrRolledBack)
	calls := e.rec.Calls()
	// Batches run in order; within a batch replacements are concurrent.
	idx := func(c string) int {
		for i, x := range calls {
			if x == c {
				return i
			}
		}
		t.Fatalf("missing call %q in %v", c, calls)
		return -1
	}
	if !(idx("replace a v2") < idx("replace c v2") && idx("replace b v2") < idx("replace d v2") && idx("replace d v2") < idx("replace e v2")) {
		t.Fatalf("batches out of order: %v", calls)
	}
	for _, n := range []string{"a", "b", "c", "d", "e"} {
		if ts[0].(*rollouttest.Target).Version() != "v1" || e.rec.Count("replace "+n+" v1") != 1 {
			t.Fatalf("%s not rolled back to v1: %v", n, calls)
		}
	}
	if st := r.Status(); !strings.Contains(st.Reason, "e not healthy after 3s") {
		t.Fatalf("reason %q", st.Reason)
	}
}

func TestRollingSurge(t *testing.T) {
	e := newEnv(t)
	var ts []rollout.Target
	for _, n := range []string{"a", "b", "c"} {
		ts = append(ts, &rollouttest.Target{Recorder: e.rec, ID: n})
	}
	sg := &rollouttest.Surger{Recorder: e.rec}
	steps, err := rollout.Rolling(ts, "v2", "v1", rollout.RollingOptions{MaxSurge: 1, Surger: sg})
	if err != nil {
		t.Fatal(err)
	}
	r := e.rollout(rollout.Plan{ID: "surge", Steps: steps}, "")
	if err := e.run(r, time.Second); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(),
		"surge-start v2", "replace a v2", "surge-stop extra-1",
		"surge-start v2", "replace b v2", "surge-stop extra-2",
		"surge-start v2", "replace c v2", "surge-stop extra-3")
	if _, err := rollout.Rolling(ts, "v2", "v1", rollout.RollingOptions{MaxSurge: 1}); err == nil {
		t.Fatal("MaxSurge without a Surger accepted")
	}
}

func TestWaitOldGoneWaitsAndIgnoresPromote(t *testing.T) {
	e := newEnv(t)
	e.reg.SetOld(2)
	r := e.rollout(rollout.Plan{ID: "old-gone", Steps: []rollout.Step{
		rollout.WaitOldGone(e.reg, "v2", time.Second).Named("gone"),
		rollout.Migration(e.m, "m", rollout.MigrationComplete),
	}}, "")
	wait, _ := start(t, r)
	ctx := bounded(t)
	if err := e.clock.WaitForWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, r.Promote(ctx), rollout.ErrInvalidCommand)
	e.clock.Advance(time.Second)
	if err := e.clock.WaitForWaiters(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if e.rec.Count("migration m complete") != 0 {
		t.Fatal("contracted while old versions run")
	}
	e.reg.SetOld(0)
	e.clock.Advance(time.Second)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(decisions(r.Status()), "2 instance(s) of older versions still alive") {
		t.Fatal(decisions(r.Status()))
	}
}

// A failed rollback leaves the rollout "failed" with both reasons; Retry
// retries the rollback from where it failed.
func TestRollbackFailureThenRetry(t *testing.T) {
	e := newEnv(t)
	e.a.SetVerdicts(rollout.Fail)
	var flagDown atomic.Bool
	flagDown.Store(true)
	e.rec.SetBefore(func(ctx context.Context, c string) error {
		if c == "flag f off" && flagDown.Load() {
			return errors.New("flag source unreachable")
		}
		return nil
	})
	r := e.rollout(rollout.Plan{ID: "rollback-fails", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.RampFlag(e.f, "f", rollout.RampOptions{Percentages: []float64{10}}),
		rollout.Analyze(e.a, rollout.AnalysisOptions{}),
	}}, "")
	wantErrIs(t, runBounded(t, r), rollout.ErrRollbackFailed)
	st := r.Status()
	if st.Phase != rollout.PhaseFailed || !strings.Contains(st.Reason, "analysis fail") || !strings.Contains(st.Reason, "flag source unreachable") {
		t.Fatalf("%s %q", st.Phase, st.Reason)
	}
	if stepStatus(st, "ramp-flag-f") != rollout.StepRollbackFailed || stepStatus(st, "set-weight-100") != rollout.StepSucceeded {
		t.Fatalf("%+v", st.Steps)
	}
	flagDown.Store(false)
	if err := r.Retry(context.Background()); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, runBounded(t, r), rollout.ErrRolledBack)
	wantCalls(t, e.rec.Calls(), "weight 100", "flag f 10", "analyze", "flag f off", "weight 0")
}

func TestPromoteEndsBakeEarly(t *testing.T) {
	e := newEnv(t)
	plan := rollout.Plan{ID: "bake-promote", Steps: []rollout.Step{
		rollout.BlueGreen(e.up, "v2", rollout.BakeOptions{Window: time.Hour, Interval: time.Minute, Analyzers: []rollout.Analyzer{e.a}}).Named("bg"),
	}}
	wantErrIs(t, runBounded(t, e.rollout(plan, "v1")), rollout.ErrHandedOff)
	r := e.rollout(plan, "v2")
	wait, _ := start(t, r)
	waitFor(t, r, "bake waiting", stepWaiting("bg"))
	if err := r.Promote(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(), "upgrade v2", "bake-promote")
	if !strings.Contains(decisions(r.Status()), "bake window ended early on operator request") {
		t.Fatal(decisions(r.Status()))
	}
}

func TestRollingOptionsAddPausesAndAnalyses(t *testing.T) {
	e := newEnv(t)
	var ts []rollout.Target
	for _, n := range []string{"a", "b", "c", "d"} {
		ts = append(ts, &rollouttest.Target{Recorder: e.rec, ID: n})
	}
	steps, err := rollout.Rolling(ts, "v2", "v1", rollout.RollingOptions{MaxUnavailable: 2, PauseBetween: time.Minute, Analyzer: e.a})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, s := range steps {
		kinds = append(kinds, string(s.Kind()))
	}
	if got := strings.Join(kinds, ","); got != "replace,analyze,pause,replace,analyze" {
		t.Fatalf("steps %s", got)
	}
	if err := e.run(e.rollout(rollout.Plan{ID: "rolling-opts", Steps: steps}, ""), time.Minute); err != nil {
		t.Fatal(err)
	}
}

// A confirm hook that keeps saying "not yet" does not grow the state
// without bound: 499 "not yet" and one "hook passed" leave the first 20,
// a marker and the last 179.
func TestDecisionsAreCapped(t *testing.T) {
	e := newEnv(t)
	var n atomic.Int32
	notYet := func(ctx context.Context, ev rollout.HookEvent) error {
		if n.Add(1) < 500 {
			return errors.New("not yet")
		}
		return nil
	}
	r := e.rollout(rollout.Plan{ID: "capped", Steps: []rollout.Step{
		rollout.Hook(notYet, rollout.HookOptions{Confirm: true, Interval: time.Second}).Named("gate"),
	}}, "")
	if err := e.run(r, time.Second); err != nil {
		t.Fatal(err)
	}
	ds := r.Status().Steps[0].Decisions
	if len(ds) != rollout.MaxDecisions {
		t.Fatalf("%d decisions kept", len(ds))
	}
	if ds[20].Reason != "(301 earlier decisions dropped)" || ds[len(ds)-1].Reason != "hook passed" {
		t.Fatalf("marker %q, last %q", ds[20].Reason, ds[len(ds)-1].Reason)
	}
}

func TestDriveRunsAgainAfterRetry(t *testing.T) {
	e := newEnv(t)
	e.a.SetVerdicts(rollout.Fail)
	r := e.rollout(rollout.Plan{ID: "drive", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.Analyze(e.a, rollout.AnalysisOptions{}),
	}}, "")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Drive(ctx) }()
	waitFor(t, r, "rolled back", func(st rollout.Status) bool { return st.Phase == rollout.PhaseRolledBack })
	e.a.SetVerdicts(rollout.Pass)
	if err := r.Retry(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r, "succeeded", func(st rollout.Status) bool { return st.Phase == rollout.PhaseSucceeded })
	cancel()
	wantErrIs(t, awaitRun(t, r, done), context.Canceled)
	wantCalls(t, e.rec.Calls(), "weight 100", "analyze", "weight 0", "weight 100", "analyze")
	if st := r.Status(); st.Run != 2 {
		t.Fatalf("run %d", st.Run)
	}
}

// Rollout-level decisions are capped like a step's: pause/resume pairs do
// not grow the state (and the cost of every save) without bound.
func TestRolloutDecisionsAreCapped(t *testing.T) {
	e := newEnv(t)
	r := e.rollout(rollout.Plan{ID: "capped-rollout", Steps: []rollout.Step{rollout.SetWeight(e.w, 100)}}, "")
	ctx := context.Background()
	for range 150 {
		if err := r.Pause(ctx); err != nil {
			t.Fatal(err)
		}
		if err := r.Resume(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ds := r.Status().Decisions
	if len(ds) != rollout.MaxDecisions {
		t.Fatalf("%d rollout decisions kept, want %d", len(ds), rollout.MaxDecisions)
	}
	if ds[20].Reason != "(101 earlier decisions dropped)" || ds[len(ds)-1].Reason != "resumed by operator" {
		t.Fatalf("marker %q, last %q", ds[20].Reason, ds[len(ds)-1].Reason)
	}
}
