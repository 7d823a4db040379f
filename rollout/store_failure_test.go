package rollout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/batonhq/baton/rollout"
)

// failingStore refuses every Save while failing is set, as a full disk
// does.
type failingStore struct {
	rollout.Store
	failing atomic.Bool
}

func (s *failingStore) Save(ctx context.Context, id string, prev int64, data []byte) (int64, error) {
	if s.failing.Load() {
		return 0, fmt.Errorf("writing the state: %w", syscall.ENOSPC)
	}
	return s.Store.Save(ctx, id, prev, data)
}

// stored returns the document the store holds for id.
func stored(t *testing.T, s rollout.Store, id string) []byte {
	t.Helper()
	data, _, err := s.Load(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// sameAsStored fails unless r's state in memory is the state on disk.
func sameAsStored(t *testing.T, r *rollout.Rollout, s rollout.Store) {
	t.Helper()
	mem, err := json.Marshal(r.Status())
	if err != nil {
		t.Fatal(err)
	}
	var disk bytes.Buffer
	if err := json.Compact(&disk, stored(t, s, r.ID())); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(mem, disk.Bytes()) {
		t.Fatalf("memory and disk differ:\n memory %s\n disk   %s", mem, disk.Bytes())
	}
}

// With the disk full, a command fails and changes nothing: not the state
// in memory, not the runner (an abort that could not be saved does not
// cancel the step).
func TestCommandsNotSavedChangeNothing(t *testing.T) {
	e := newEnv(t)
	fs := &failingStore{Store: e.store}
	e.store = fs
	r := e.rollout(rollout.Plan{ID: "full-disk-commands", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.PauseUntilPromoted().Named("hold"),
		rollout.SetWeight(e.w, 200),
	}}, "")
	c, _ := adminOnSocket(t, r)
	wait, _ := start(t, r)
	waitFor(t, r, "hold waiting", stepWaiting("hold"))
	before := stored(t, fs, r.ID())
	fs.failing.Store(true)
	ctx := context.Background()
	for name, cmd := range map[string]func() error{
		"pause":        func() error { return r.Pause(ctx) },
		"abort":        func() error { return r.Abort(ctx, "disk is full") },
		"promote":      func() error { return r.Promote(ctx) },
		"promote-full": func() error { return r.PromoteFull(ctx) },
	} {
		if err := cmd(); !errors.Is(err, rollout.ErrNotSaved) || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s with the disk full: %v, want ErrNotSaved with the store's error", name, err)
		}
	}
	if code, body := post(t, c, "/api/pause", "application/json", ""); code != http.StatusServiceUnavailable || !strings.Contains(body, "nothing changed") {
		t.Errorf("POST /api/pause with the disk full: %d %s, want 503 saying nothing changed", code, body)
	}
	st := r.Status()
	if st.Paused || st.PromoteFull || st.AbortRequested != "" || !stepWaiting("hold")(st) || st.Phase != rollout.PhaseRunning {
		t.Fatalf("refused commands took effect: paused %v promoteFull %v abort %q, hold %+v", st.Paused, st.PromoteFull, st.AbortRequested, st.Steps[1])
	}
	if after := stored(t, fs, r.ID()); !bytes.Equal(before, after) {
		t.Fatal("the stored state changed while the store failed")
	}
	fs.failing.Store(false)
	if err := r.Promote(ctx); err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, e.rec.Calls(), "weight 100", "weight 200")
}

// A save that fails during a step is like a cancelled context: Run
// returns the error, the step stays recorded running, memory equals
// disk, and once the disk has room again the rollout resumes instead of
// rolling back.
func TestStepNotSavedResumesInsteadOfRollingBack(t *testing.T) {
	e := newEnv(t)
	fs := &failingStore{Store: e.store}
	e.store = fs
	plan := rollout.Plan{ID: "full-disk-step", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100).Named("a"),
		rollout.SetWeight(e.w, 200).Named("b"),
		rollout.SetWeight(e.w, 300).Named("c"),
	}}
	e.rec.SetBefore(func(ctx context.Context, call string) error {
		if call == "weight 200" {
			fs.failing.Store(true) // the disk fills during b's effect
		}
		return nil
	})
	r := e.rollout(plan, "")
	err := runBounded(t, r)
	if !errors.Is(err, rollout.ErrNotSaved) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Run with the disk full: %v, want ErrNotSaved with the store's error", err)
	}
	st := r.Status()
	if st.Phase != rollout.PhaseRunning || stepStatus(st, "b") != rollout.StepRunning {
		t.Fatalf("after the failed save: phase %s, b %s; want running, running", st.Phase, stepStatus(st, "b"))
	}
	sameAsStored(t, r, fs)
	fs.failing.Store(false)
	e.rec.SetBefore(nil)
	if err := runBounded(t, e.rollout(plan, "")); err != nil {
		t.Fatal(err)
	}
	// b's effect was made, then made again on resume (at-least-once);
	// nothing was rolled back.
	wantCalls(t, e.rec.Calls(), "weight 100", "weight 200", "weight 200", "weight 300")
}
