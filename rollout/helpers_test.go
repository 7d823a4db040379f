package rollout_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/rollouttest"
)

var t0 = time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)

// env holds the fakes of one test, sharing one Recorder so that the order
// of calls across kinds is visible.
type env struct {
	t     *testing.T
	rec   *rollouttest.Recorder
	clock *rollouttest.Clock
	store rollout.Store
	up    *rollouttest.Upgrader
	w     *rollouttest.Weights
	f     *rollouttest.Flags
	m     *rollouttest.Migrator
	a     *rollouttest.Analyzer
	reg   *rollouttest.Registry
}

func newEnv(t *testing.T) *env {
	t.Helper()
	rec := &rollouttest.Recorder{}
	fs, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return &env{
		t: t, rec: rec, clock: rollouttest.NewClock(t0), store: fs,
		up:  &rollouttest.Upgrader{Recorder: rec, To: "v2"},
		w:   &rollouttest.Weights{Recorder: rec},
		f:   &rollouttest.Flags{Recorder: rec},
		m:   &rollouttest.Migrator{Recorder: rec},
		a:   &rollouttest.Analyzer{Recorder: rec},
		reg: &rollouttest.Registry{Recorder: rec},
	}
}

func (e *env) rollout(p rollout.Plan, version string) *rollout.Rollout {
	e.t.Helper()
	r, err := rollout.New(context.Background(), p, rollout.Options{Store: e.store, Clock: e.clock, Version: version})
	if err != nil {
		e.t.Fatal(err)
	}
	return r
}

// runLimit bounds every Run of these tests: a runner that hangs fails its
// test within it, saying what it waited for, instead of running into the
// global go test timeout.
const runLimit = 45 * time.Second

// awaitRun waits for Run's error on done, for at most runLimit.
func awaitRun(t *testing.T, r *rollout.Rollout, done <-chan error) error {
	t.Helper()
	timer := time.NewTimer(runLimit + 5*time.Second)
	defer timer.Stop()
	select {
	case err := <-done:
		if errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run of %s did not end within %s; state: %+v", r.ID(), runLimit, r.Status())
		}
		return err
	case <-timer.C:
		t.Fatalf("Run of %s did not return within %s of its context's end; state: %+v", r.ID(), runLimit, r.Status())
		return nil
	}
}

// runBounded runs r to its end, for at most runLimit.
func runBounded(t *testing.T, r *rollout.Rollout) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return awaitRun(t, r, done)
}

// run runs r to its end while a helper advances the fake clock whenever the
// runner waits on it; it returns Run's error.
func (e *env) run(r *rollout.Rollout, step time.Duration) error {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	tick := make(chan struct{})
	go func() {
		defer close(tick)
		for ctx.Err() == nil {
			if e.clock.WaitForWaiters(ctx, 1) != nil {
				return
			}
			e.clock.Advance(step)
		}
	}()
	err := awaitRun(e.t, r, done)
	cancel()
	<-tick
	return err
}

// start runs r in the background; the returned func waits for Run's error
// (for at most runLimit).
func start(t *testing.T, r *rollout.Rollout) (wait func() error, cancel func()) {
	ctx, cancelCtx := context.WithTimeout(context.Background(), runLimit)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var err error
	waited := false
	wait = func() error {
		t.Helper()
		if !waited {
			waited = true // a failed wait is not waited for again at cleanup
			err = awaitRun(t, r, done)
		}
		return err
	}
	t.Cleanup(func() { cancelCtx(); wait() })
	return wait, cancelCtx
}

// bounded returns a context for a wait of the test itself (a fake clock's
// waiters), ended after runLimit.
func bounded(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	t.Cleanup(cancel)
	return ctx
}

// waitFor blocks until cond holds on the rollout's status, or fails the
// test after a generous bound (a hang, not a timing assertion).
func waitFor(t *testing.T, r *rollout.Rollout, what string, cond func(rollout.Status) bool) rollout.Status {
	t.Helper()
	hang := time.After(30 * time.Second)
	for {
		ch := r.Changed()
		st := r.Status()
		if cond(st) {
			return st
		}
		select {
		case <-ch:
		case <-hang:
			t.Fatalf("timed out waiting for %s; state: %+v", what, st)
		}
	}
}

func stepWaiting(name string) func(rollout.Status) bool {
	return func(st rollout.Status) bool {
		for _, s := range st.Steps {
			if s.Name == name {
				return s.Waiting
			}
		}
		return false
	}
}

func stepStatus(st rollout.Status, name string) rollout.StepStatus {
	for _, s := range st.Steps {
		if s.Name == name {
			return s.Status
		}
	}
	return "missing"
}

func after(calls []string, marker string) []string {
	i := slices.Index(calls, marker)
	if i < 0 {
		return nil
	}
	return calls[i+1:]
}

func wantCalls(t *testing.T, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("calls:\n got  %s\n want %s", strings.Join(got, " | "), strings.Join(want, " | "))
	}
}

func wantErrIs(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("got error %v, want %v", err, target)
	}
}

func decisions(st rollout.Status) string {
	var b strings.Builder
	for _, d := range st.Decisions {
		b.WriteString(d.Reason + "\n")
	}
	for _, s := range st.Steps {
		for _, d := range s.Decisions {
			b.WriteString(s.Name + ": " + d.Reason + "\n")
		}
	}
	return b.String()
}
