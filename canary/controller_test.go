package canary_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/canary/canarytest"
)

type rig struct {
	clock  *canarytest.Clock
	s      *canary.Splitter
	c      *canary.Controller
	events []canary.Event
}

func newRig(t *testing.T, steps []canary.Step, ao canary.AnalysisOptions) *rig {
	t.Helper()
	r := &rig{clock: canarytest.NewClock(canarytest.Epoch)}
	r.s = newSplitter(t, canary.Options{Clock: r.clock, Window: time.Minute, Resolution: 5 * time.Second})
	c, err := canary.NewController(canary.ControllerOptions{
		Splitter: r.s, Steps: steps, Analysis: ao, Interval: 10 * time.Second,
		OnEvent: func(e canary.Event) { r.events = append(r.events, e) },
	})
	if err != nil {
		t.Fatal(err)
	}
	r.c = c
	return r
}

// traffic records n requests per variant over the next d, errors at the
// given rates, then advances the clock by d.
func (r *rig) traffic(d time.Duration, n int, stableErr, canaryErr int) {
	start := r.clock.Now()
	m := r.s.Metrics()
	for i := range n {
		at := start.Add(time.Duration(i) * d / time.Duration(n))
		m.RecordAt(canary.Stable, at, time.Millisecond, stableErr > 0 && i%stableErr == 0)
		m.RecordAt(canary.Canary, at, time.Millisecond, canaryErr > 0 && i%canaryErr == 0)
	}
	r.clock.Advance(d)
}

func (r *rig) kinds() string {
	var k []string
	for _, e := range r.events {
		k = append(k, e.Kind.String())
	}
	return strings.Join(k, ",")
}

func TestControllerManual(t *testing.T) {
	steps := []canary.Step{{Weight: 100, MinDuration: time.Hour}, {Weight: 1000, MinDuration: time.Hour}}
	r := newRig(t, steps, canary.AnalysisOptions{})
	ctx := context.Background()
	if _, err := r.c.Evaluate(ctx); !errors.Is(err, canary.ErrNotStarted) {
		t.Fatalf("Evaluate before Start = %v", err)
	}
	if err := r.c.Pause(""); !errors.Is(err, canary.ErrNotStarted) {
		t.Fatalf("Pause before Start = %v", err)
	}
	if st := r.c.Status(); st.Phase != canary.PhasePending || st.Step != -1 || st.Weight != 0 {
		t.Fatalf("pending status %+v", st)
	}
	if err := r.c.Start(); err != nil || r.s.Weight() != 100 {
		t.Fatalf("Start: %v, weight %d", err, r.s.Weight())
	}
	if err := r.c.Pause("waiting for the on-call"); err != nil {
		t.Fatal(err)
	}
	if st := r.c.Status(); st.Phase != canary.PhasePaused || st.Reason != "waiting for the on-call" {
		t.Fatalf("paused status %s %q", st.Phase, st.Reason)
	}
	// Paused at a passing step: no promotion even after the duration.
	r.clock.Advance(2 * time.Hour)
	r.traffic(time.Minute, 3000, 0, 0)
	if rep, err := r.c.Evaluate(ctx); err != nil || rep.Verdict != canary.Pass || r.s.Weight() != 100 {
		t.Fatalf("paused evaluate: %v %s weight %d", err, rep.Verdict, r.s.Weight())
	}
	if err := r.c.Promote(); err != nil || r.s.Weight() != 1000 || r.c.Status().Phase != canary.PhasePaused {
		t.Fatalf("manual promote while paused: %v weight %d state %s", err, r.s.Weight(), r.c.Status().Phase)
	}
	if err := r.c.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := r.c.Promote(); err != nil || r.s.Weight() != canary.MaxWeight || r.c.Status().Phase != canary.PhaseSucceeded {
		t.Fatalf("manual promote from last step: %v weight %d", err, r.s.Weight())
	}
	select {
	case <-r.c.Done():
	default:
		t.Fatal("Done not closed after promotion")
	}
	for _, f := range []func() error{r.c.Promote, r.c.Start, r.c.Resume, func() error { return r.c.Abort("") }} {
		if err := f(); !errors.Is(err, canary.ErrFinished) {
			t.Fatalf("after promotion: %v", err)
		}
	}
	if got, want := r.kinds(), "started,paused,step,resumed,promoted"; got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	for _, e := range r.events[1:] {
		if !e.Manual {
			t.Fatalf("event %s not marked manual", e.Kind)
		}
	}
}

func TestControllerManualAbort(t *testing.T) {
	r := newRig(t, []canary.Step{{Weight: 500}}, canary.AnalysisOptions{})
	if err := r.c.Start(); err != nil {
		t.Fatal(err)
	}
	if err := r.c.Abort("customer reports from EU"); err != nil {
		t.Fatal(err)
	}
	st := r.c.Status()
	if st.Phase != canary.PhaseRolledBack || st.Weight != 0 || st.Reason != "customer reports from EU" || !r.s.Halted() {
		t.Fatalf("after abort: %+v halted %v", st, r.s.Halted())
	}
	err := r.c.Run(context.Background())
	var ae *canary.AbortError
	if !errors.As(err, &ae) || !ae.Manual || !errors.Is(err, canary.ErrAborted) {
		t.Fatalf("Run after abort = %v", err)
	}
}

// TestControllerAutomatic walks a two-step rollout: insufficient data holds
// the step, passes promote after MinDuration and MinSamples, and a failure
// in the last step aborts with a reason in words.
func TestControllerAutomatic(t *testing.T) {
	steps := []canary.Step{
		{Weight: 500, MinDuration: 30 * time.Second, MinSamples: 500},
		{Weight: 5000, MinDuration: 30 * time.Second},
	}
	r := newRig(t, steps, canary.AnalysisOptions{SkipLatency: true})
	ctx := context.Background()
	if err := r.c.Start(); err != nil {
		t.Fatal(err)
	}
	r.traffic(10*time.Second, 50, 0, 0)
	rep, _ := r.c.Evaluate(ctx)
	if rep.Verdict != canary.Inconclusive || r.s.Weight() != 500 {
		t.Fatalf("50 requests: %s at %d", rep.Verdict, r.s.Weight())
	}
	for range 3 {
		r.traffic(10*time.Second, 300, 0, 0)
		r.c.Evaluate(ctx)
	}
	// 40 s, 950 canary requests (500 needed) without an error: positive
	// evidence, and the step moves on.
	st := r.c.Status()
	if st.Step != 1 || st.Weight != 5000 {
		t.Fatalf("after 40s of passing checks: step %d weight %d (%s)", st.Step, st.Weight, st.Reason)
	}
	r.traffic(10*time.Second, 500, 1000, 10)
	rep, _ = r.c.Evaluate(ctx)
	st = r.c.Status()
	if rep.Verdict != canary.Fail || st.Phase != canary.PhaseRolledBack || st.Weight != 0 {
		t.Fatalf("10%% errors: %s, %s at %d", rep.Verdict, st.Phase, st.Weight)
	}
	if !strings.HasPrefix(st.Reason, "canary is worse than stable: canary error rate") {
		t.Fatalf("reason %q", st.Reason)
	}
	if got, want := r.kinds(), "started,step,aborted"; got != want {
		t.Fatalf("events %s, want %s", got, want)
	}
	if e := r.events[2]; e.Manual || e.From != canary.PhaseRunning || e.To != canary.PhaseRolledBack || e.Reason != st.Reason {
		t.Fatalf("abort event %+v", e)
	}
	if _, err := r.c.Evaluate(ctx); !errors.Is(err, canary.ErrFinished) {
		t.Fatalf("Evaluate after abort = %v", err)
	}
}

func TestControllerMinSamplesHolds(t *testing.T) {
	r := newRig(t, []canary.Step{{Weight: 500, MinDuration: time.Minute, MinSamples: 10_000}}, canary.AnalysisOptions{SkipLatency: true})
	r.c.Start()
	for range 5 {
		r.traffic(10*time.Second, 200, 0, 0)
		r.c.Evaluate(context.Background())
	}
	// Below MinSamples and before its deadline (4 x MinDuration), the
	// step neither moves nor holds.
	if st := r.c.Status(); st.Phase != canary.PhaseRunning || st.StepRequests != 1000 {
		t.Fatalf("below MinSamples: %s with %d step requests", st.Phase, st.StepRequests)
	}
}

func TestControllerAbsoluteLimits(t *testing.T) {
	r := newRig(t, []canary.Step{{Weight: 500}}, canary.AnalysisOptions{MaxErrorRate: 0.01, SkipLatency: true})
	r.c.Start()
	// Same 2% on both: not worse than stable, but over the limit.
	r.traffic(10*time.Second, 500, 50, 50)
	rep, _ := r.c.Evaluate(context.Background())
	if rep.Verdict != canary.Fail || !strings.Contains(rep.Reason, "against a limit of 1.0%") {
		t.Fatalf("absolute limit: %s: %s", rep.Verdict, rep.Reason)
	}
	var lim canary.Check
	for _, c := range rep.Checks {
		if c.Name == "max error rate" {
			lim = c
		}
		if c.Name == "error rate" && c.Verdict == canary.Fail {
			t.Fatalf("relative check: %+v", c)
		}
	}
	if lim.Verdict != canary.Fail {
		t.Fatalf("limit check %+v", lim)
	}
}

func TestControllerRun(t *testing.T) {
	s := newSplitter(t, canary.Options{})
	c, err := canary.NewController(canary.ControllerOptions{
		Splitter: s, Interval: time.Millisecond,
		Steps: []canary.Step{{Weight: 100, MinDuration: time.Nanosecond, SkipAnalysis: true}, {Weight: 200, MinDuration: time.Nanosecond, SkipAnalysis: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(context.Background()); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if st := c.Status(); st.Phase != canary.PhaseSucceeded || s.Weight() != canary.MaxWeight {
		t.Fatalf("after Run: %s at %d", st.Phase, s.Weight())
	}
	// Cancellation leaves the weight where it is.
	s2 := newSplitter(t, canary.Options{})
	c2, _ := canary.NewController(canary.ControllerOptions{Splitter: s2, Steps: []canary.Step{{Weight: 300}}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c2.Run(ctx); !errors.Is(err, context.Canceled) || s2.Weight() != 300 {
		t.Fatalf("canceled Run = %v, weight %d", err, s2.Weight())
	}
}

func TestControllerOptionsErrors(t *testing.T) {
	s := newSplitter(t, canary.Options{})
	cases := []struct {
		o     canary.ControllerOptions
		field string
	}{
		{canary.ControllerOptions{Steps: []canary.Step{{}}}, "Splitter"},
		{canary.ControllerOptions{Splitter: s}, "Steps"},
		{canary.ControllerOptions{Splitter: s, Steps: []canary.Step{{Weight: 10001}}}, "Steps[0].Weight"},
		{canary.ControllerOptions{Splitter: s, Steps: []canary.Step{{Weight: 500}, {Weight: 10000}}}, "Steps[1].Weight"},
		{canary.ControllerOptions{Splitter: s, Steps: []canary.Step{{Weight: 500}, {Weight: 100}}}, "Steps[1].Weight"},
		{canary.ControllerOptions{Splitter: s, Steps: []canary.Step{{MinDuration: -1}}}, "Steps[0].MinDuration"},
		{canary.ControllerOptions{Splitter: s, Steps: []canary.Step{{MaxDuration: -1}}}, "Steps[0].MaxDuration"},
		{canary.ControllerOptions{Splitter: s, Steps: []canary.Step{{MinDuration: time.Minute, MaxDuration: time.Second}}}, "Steps[0].MaxDuration"},
		{canary.ControllerOptions{Splitter: s, Steps: []canary.Step{{}}, Analysis: canary.AnalysisOptions{Alpha: 2}}, "Analysis.Alpha"},
		{canary.ControllerOptions{Splitter: s, Steps: []canary.Step{{}}, Interval: -time.Second}, "Interval"},
	}
	for _, c := range cases {
		_, err := canary.NewController(c.o)
		var oe *canary.OptionsError
		if !errors.As(err, &oe) || oe.Field != c.field {
			t.Errorf("want an error on %s, got %v", c.field, err)
		}
	}
	_, err := canary.NewController(canary.ControllerOptions{Splitter: s, Steps: []canary.Step{{Weight: 500}, {Weight: 100}}})
	if want := "canary: invalid options: Steps[1].Weight: 1% is below the previous step's 5%: weights must not decrease"; fmt.Sprint(err) != want {
		t.Errorf("error text %q", err)
	}
}

// TestControllerDeadline: a step without a Pass by its MaxDuration is held
// (never promoted), Resume gives it a new deadline, and FailInconclusive
// rolls it back instead.
func TestControllerDeadline(t *testing.T) {
	steps := []canary.Step{{Weight: 500, MinDuration: 10 * time.Second, MaxDuration: 30 * time.Second}}
	r := newRig(t, steps, canary.AnalysisOptions{SkipLatency: true})
	ctx := context.Background()
	r.c.Start()
	for range 3 {
		r.traffic(10*time.Second, 10, 0, 0) // far too little for evidence
		r.c.Evaluate(ctx)
	}
	st := r.c.Status()
	if st.Phase != canary.PhasePaused || st.Weight != 500 || !strings.HasPrefix(st.Reason, "held: no passing analysis after 30s at 5%") {
		t.Fatalf("at the deadline: %s at %d (%q), want held at 5%%", st.Phase, st.Weight, st.Reason)
	}
	if e := r.events[len(r.events)-1]; e.Kind != canary.EventPaused || e.Manual || e.To != canary.PhasePaused {
		t.Fatalf("hold event %+v", e)
	}
	if err := r.c.Resume(); err != nil {
		t.Fatal(err)
	}
	r.traffic(10*time.Second, 10, 0, 0)
	if r.c.Evaluate(ctx); r.c.Status().Phase != canary.PhaseRunning {
		t.Fatalf("10s after Resume: %s, want running until a new deadline", r.c.Status().Phase)
	}

	f := newRig(t, steps, canary.AnalysisOptions{SkipLatency: true})
	fc, err := canary.NewController(canary.ControllerOptions{Splitter: f.s, Steps: steps, OnDeadline: canary.FailInconclusive,
		Analysis: canary.AnalysisOptions{SkipLatency: true}, Interval: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	fc.Start()
	for range 3 {
		f.traffic(10*time.Second, 10, 0, 0)
		fc.Evaluate(ctx)
	}
	if st := fc.Status(); st.Phase != canary.PhaseRolledBack || !strings.Contains(st.Reason, "no passing analysis after 30s") {
		t.Fatalf("FailInconclusive at the deadline: %s (%q)", st.Phase, st.Reason)
	}
}
