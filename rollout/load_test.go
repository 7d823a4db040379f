package rollout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/batonhq/baton/rollout"
)

// stopAtHold runs r until its step "hold" waits, then stops it: the state
// to edit is that of a rollout resumed later.
func stopAtHold(t *testing.T, r *rollout.Rollout) {
	t.Helper()
	wait, cancel := start(t, r)
	waitFor(t, r, "hold waiting", stepWaiting("hold"))
	cancel()
	wantErrIs(t, wait(), context.Canceled)
}

// editStored rewrites the stored state of id with edit (by hand, as an
// operator or an attacker would).
func editStored(t *testing.T, s rollout.Store, id string, edit func(doc string) string) {
	t.Helper()
	ctx := context.Background()
	data, rev, err := s.Load(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, data); err != nil {
		t.Fatal(err)
	}
	next := edit(compact.String())
	if next == string(data) {
		t.Fatal("the edit changed nothing; the test proves nothing")
	}
	if _, err := s.Save(ctx, id, rev, []byte(next)); err != nil {
		t.Fatal(err)
	}
}

// A state edited by hand is refused whole: a misspelled key would re-run
// a completed step, an unknown status skip or repeat one, a negative
// progress crash the runner.
func TestStoredStateValidatedOnLoad(t *testing.T) {
	e := newEnv(t)
	plan := rollout.Plan{ID: "edited", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100).Named("w"),
		rollout.RampFlag(e.f, "f", rollout.RampOptions{Percentages: []float64{10, 50}}).Named("ramp"),
		rollout.PauseUntilPromoted().Named("hold"),
	}}
	stopAtHold(t, e.rollout(plan, ""))
	var good bytes.Buffer
	if err := json.Compact(&good, stored(t, e.store, plan.ID)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"misspelled key", `"status":"succeeded"`, `"stauts":"succeeded"`, `unknown field "stauts"`},
		{"unknown status", `"status":"succeeded"`, `"status":"succeded"`, `steps[0].status: unknown status "succeded"`},
		{"unknown phase", `"phase":"running"`, `"phase":"runing"`, `phase: unknown phase "runing"`},
		{"negative progress", `"progress":2`, `"progress":-1`, "steps[1].progress: -1 is negative"},
		{"progress past the ramp", `"progress":2`, `"progress":7`, "steps[1].progress: 7 percentages done of 2"},
		{"current out of range", `"current":2`, `"current":9`, "current: 9 is outside -1..2"},
		{"weight out of range", `],"weight":100`, `],"weight":20000`, "weight: 20000 basis points"},
		{"decision weight out of range", `"weight":100}`, `"weight":20000}`, "steps[0].decisions[0]: weight 20000 basis points"},
		{"decision percent out of range", `"percent":50}`, `"percent":150}`, "steps[1].decisions[1]: percent 150 is outside 0..100"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := good.String()
			i := strings.Index(doc, tc.from)
			if i < 0 {
				t.Fatalf("%q not in the stored state %s", tc.from, doc)
			}
			editStored(t, e.store, plan.ID, func(string) string { return doc[:i] + tc.to + doc[i+len(tc.from):] })
			_, err := rollout.New(context.Background(), plan, rollout.Options{Store: e.store, Clock: e.clock})
			var se *rollout.StateError
			if !errors.As(err, &se) || !errors.Is(err, rollout.ErrInvalidState) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New on the edited state: %v, want a *StateError with %q", err, tc.want)
			}
			editStored(t, e.store, plan.ID, func(string) string { return good.String() })
		})
	}
	if n := e.rec.Count("weight 100"); n != 1 {
		t.Fatalf("the completed step ran %d times", n)
	}
}

// Irreversible comes from the plan, never from the file: a contract
// marked reversible by hand is still a point of no return.
func TestIrreversibleTakenFromThePlan(t *testing.T) {
	e := newEnv(t)
	plan := rollout.Plan{ID: "irreversible-edited", Steps: []rollout.Step{
		rollout.Migration(e.m, "m", rollout.MigrationStart),
		rollout.Migration(e.m, "m", rollout.MigrationComplete),
		rollout.PauseUntilPromoted().Named("hold"),
	}}
	stopAtHold(t, e.rollout(plan, ""))
	editStored(t, e.store, plan.ID, func(doc string) string {
		return strings.Replace(doc, `"irreversible":true,`, ``, 1)
	})
	r2 := e.rollout(plan, "")
	if !r2.Status().Steps[1].Irreversible {
		t.Fatal("the stored irreversible flag, not the plan's, was loaded")
	}
	wait2, _ := start(t, r2)
	waitFor(t, r2, "hold waiting", stepWaiting("hold"))
	if err := r2.Abort(context.Background(), "test"); err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, wait2(), rollout.ErrRolledBack)
	if n := e.rec.Count("migration m rollback"); n != 0 {
		t.Fatalf("the contract was rolled back (%d rollbacks)", n)
	}
}
