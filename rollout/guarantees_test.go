package rollout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/rollouttest"
)

// The tests below hold the runner to what doc.go promises about restarts
// and commands; each names the change it catches.

// stopAfterCompletion cancels the runner's context right after the save
// that records step succeeded, so that Run stops before anything else.
type stopAfterCompletion struct {
	rollout.Store
	step   string
	cancel context.CancelFunc
	once   sync.Once
}

func (s *stopAfterCompletion) Save(ctx context.Context, id string, prev int64, data []byte) (int64, error) {
	rev, err := s.Store.Save(ctx, id, prev, data)
	if err == nil && stepSucceeded(data, s.step) {
		s.once.Do(s.cancel)
	}
	return rev, err
}

// A runner stopped right after a step's completion is saved, and a new
// Rollout loaded from the store: the step's effect happened once.
// Catches a loader that runs the completed current step again.
func TestStoppedRightAfterCompletionEffectOnce(t *testing.T) {
	for _, tc := range []struct{ step, effect string }{
		{"pre", "hook pre"}, {"weight", "weight 500"}, {"ramp", "flag f 50"}, {"expand", "migration m start"},
	} {
		t.Run(tc.step, func(t *testing.T) {
			e := newEnv(t)
			plan := rollout.Plan{ID: "stop-after", Steps: []rollout.Step{
				rollout.Hook(func(ctx context.Context, ev rollout.HookEvent) error { return e.rec.Record(ctx, "hook "+ev.Step) }, rollout.HookOptions{}).Named("pre"),
				rollout.SetWeight(e.w, 500).Named("weight"),
				rollout.RampFlag(e.f, "f", rollout.RampOptions{Percentages: []float64{10, 50}, Interval: time.Nanosecond}).Named("ramp"),
				rollout.Migration(e.m, "m", rollout.MigrationStart).Named("expand"),
				rollout.SetWeight(e.w, 10000).Named("full"),
			}}
			ctx, cancel := context.WithTimeout(context.Background(), runLimit)
			defer cancel()
			stop := &stopAfterCompletion{Store: e.store, step: tc.step, cancel: cancel}
			r, err := rollout.New(ctx, plan, rollout.Options{Store: stop, Clock: e.clock})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- r.Run(ctx) }()
			wantErrIs(t, awaitRun(t, r, done), context.Canceled)
			if s := stepStatus(r.Status(), tc.step); s != rollout.StepSucceeded {
				t.Fatalf("the runner stopped with %s %s", tc.step, s)
			}
			if err := e.run(e.rollout(plan, ""), time.Hour); err != nil {
				t.Fatal(err)
			}
			if n := e.rec.Count(tc.effect); n != 1 {
				t.Fatalf("%q happened %d times after a stop right after %s completed:\n%v", tc.effect, n, tc.step, e.rec.Calls())
			}
		})
	}
}

// While a step's effect is being made, a second reader of the store sees
// the step running (and a blue-green step promoted while its Promote
// runs). Catches a runner that saves "running" after the effect, or
// not at all.
func TestStepRecordedBeforeItsEffect(t *testing.T) {
	e := newEnv(t)
	tg := &rollouttest.Target{Recorder: e.rec, ID: "t1"}
	rolling, err := rollout.Rolling([]rollout.Target{tg}, "v2", "v1", rollout.RollingOptions{})
	if err != nil {
		t.Fatal(err)
	}
	steps := []rollout.Step{
		rollout.Hook(func(ctx context.Context, ev rollout.HookEvent) error { return e.rec.Record(ctx, "hook") }, rollout.HookOptions{}).Named("hook"),
		rollout.Migration(e.m, "m", rollout.MigrationStart).Named("expand"),
		rollout.SetWeight(e.w, 500).Named("weight"),
		rollout.Analyze(e.a, rollout.AnalysisOptions{}).Named("check"),
		rollout.RampFlag(e.f, "f", rollout.RampOptions{Percentages: []float64{10}}).Named("ramp"),
		rollout.WaitOldGone(e.reg, "v2", time.Second).Named("old-gone"),
	}
	steps = append(steps, rolling[0].Named("replace"),
		rollout.BlueGreen(e.up, "v2", rollout.BakeOptions{Window: time.Minute, Interval: time.Minute, Analyzers: []rollout.Analyzer{e.a}}).Named("bg"))
	plan := rollout.Plan{ID: "recorded-first", Steps: steps}
	owner := map[string]string{
		"hook": "hook", "migration m start": "expand", "weight 500": "weight", "analyze": "check",
		"flag f 10": "ramp", "registry": "old-gone", "replace t1 v2": "replace", "upgrade v2": "bg", "bake-promote": "bg",
	}
	var mu sync.Mutex
	seen := map[string]bool{}
	e.rec.SetBefore(func(ctx context.Context, call string) error {
		step, ok := owner[call]
		if !ok || (call == "analyze" && seen["analyze"]) {
			return nil // the bake's analysis: its step is already checked
		}
		mu.Lock()
		seen[call] = true
		mu.Unlock()
		var st rollout.Status
		data, _, err := e.store.Load(ctx, plan.ID)
		if err == nil {
			err = json.Unmarshal(data, &st)
		}
		if err != nil {
			t.Errorf("second reader: %v", err)
			return nil
		}
		for i, s := range st.Steps {
			if s.Name != step {
				continue
			}
			if s.Status != rollout.StepRunning || s.Attempts < 1 || st.Current != i {
				t.Errorf("during %q the store says step %s is %s (attempt %d, current %d); want running, current", call, step, s.Status, s.Attempts, st.Current)
			}
			if call == "bake-promote" && !s.Promoted {
				t.Errorf("during %q the store does not record the promotion, a point of no return", call)
			}
		}
		return nil
	})
	wantErrIs(t, runBounded(t, e.rollout(plan, "v1")), rollout.ErrHandedOff)
	if err := e.run(e.rollout(plan, "v2"), time.Minute); err != nil {
		t.Fatal(err)
	}
	for call := range owner {
		if !seen[call] {
			t.Errorf("%q was never called: the test checked nothing for it", call)
		}
	}
}

// stateNow returns the rollout's state in memory and on disk, as JSON.
func stateNow(t *testing.T, r *rollout.Rollout, s rollout.Store) (mem, disk []byte) {
	t.Helper()
	mem, err := json.Marshal(r.Status())
	if err != nil {
		t.Fatal(err)
	}
	return mem, stored(t, s, r.ID())
}

// refused checks that each command is refused with a *CommandError and
// leaves the state as it was, in memory and on disk.
func refused(t *testing.T, r *rollout.Rollout, s rollout.Store, cmds map[string]func() error) {
	t.Helper()
	mem, disk := stateNow(t, r, s)
	for name, cmd := range cmds {
		var ce *rollout.CommandError
		if err := cmd(); !errors.As(err, &ce) || !errors.Is(err, rollout.ErrInvalidCommand) {
			t.Errorf("%s: %v, want a *CommandError", name, err)
		}
		mem2, disk2 := stateNow(t, r, s)
		if !bytes.Equal(mem, mem2) || !bytes.Equal(disk, disk2) {
			t.Errorf("%s was refused but changed the state:\n before %s\n after  %s", name, mem, mem2)
		}
	}
}

// Retry while running, and Pause, PromoteFull, Abort (and Promote,
// Resume) while rolling back, are refused with a *CommandError and change
// nothing. Catches commands accepted in a phase they do not apply to.
func TestCommandsRefusedInTheWrongPhase(t *testing.T) {
	ctx := context.Background()
	t.Run("retry while running", func(t *testing.T) {
		e := newEnv(t)
		r := e.rollout(rollout.Plan{ID: "retry-running", Steps: []rollout.Step{
			rollout.SetWeight(e.w, 100), rollout.PauseUntilPromoted().Named("hold"),
		}}, "")
		wait, _ := start(t, r)
		waitFor(t, r, "hold waiting", stepWaiting("hold"))
		refused(t, r, e.store, map[string]func() error{"retry": func() error { return r.Retry(ctx) }})
		if err := r.Promote(ctx); err != nil {
			t.Fatal(err)
		}
		if err := wait(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("commands while rolling back", func(t *testing.T) {
		e := newEnv(t)
		reached, release := make(chan struct{}), make(chan struct{})
		e.rec.SetBefore(func(ctx context.Context, call string) error {
			if call == "weight 0" {
				close(reached)
				select {
				case <-release:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		})
		r := e.rollout(rollout.Plan{ID: "cmds-rolling-back", Steps: []rollout.Step{
			rollout.SetWeight(e.w, 100),
			rollout.Hook(func(context.Context, rollout.HookEvent) error { return errors.New("smoke test failed") }, rollout.HookOptions{}),
		}}, "")
		wait, _ := start(t, r)
		select {
		case <-reached:
		case <-time.After(runLimit):
			t.Fatalf("the rollback never reached the weight; state: %+v", r.Status())
		}
		if st := r.Status(); st.Phase != rollout.PhaseRollingBack {
			t.Fatalf("phase %s, want rolling back", st.Phase)
		}
		refused(t, r, e.store, map[string]func() error{
			"pause":        func() error { return r.Pause(ctx) },
			"promote-full": func() error { return r.PromoteFull(ctx) },
			"abort":        func() error { return r.Abort(ctx, "again") },
			"promote":      func() error { return r.Promote(ctx) },
			"resume":       func() error { return r.Resume(ctx) },
			"retry":        func() error { return r.Retry(ctx) },
		})
		close(release)
		wantErrIs(t, wait(), rollout.ErrRolledBack)
		if !strings.Contains(r.Status().Reason, "smoke test failed") {
			t.Fatalf("reason %q", r.Status().Reason)
		}
	})
}
