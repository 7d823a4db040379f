package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
)

const manifestV2 = `# orders v2
id: orders-v2
version: v2
binary: /opt/orders/releases/v2/orders
steps:
  - migration: {name: split_name, phase: start}
  - blueGreen: {window: 2m, interval: 1m, analyzers: [errors], startWeight: 1000}
  - canary: {weights: [5000, 10000], analyzer: canary, count: 2, interval: 1m}
  - rampFlag: {flag: read-new-name, percentages: [50, 100], interval: 1m, analyzer: rows-agree}
  - migration: {name: split_name, phase: backfill}
  - migration: {name: split_name, phase: switch-reads}
  - waitOldGone: {poll: 1s}
    timeout: 1m
  - migration: {name: split_name, phase: complete}
`

func TestParseReleaseYAMLAndJSON(t *testing.T) {
	rel, err := rollout.ParseRelease([]byte(manifestV2), "v2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if rel.ID != "orders-v2" || rel.Version != "v2" || len(rel.Steps) != 8 || rel.Steps[1].BlueGreen == nil ||
		*rel.Steps[1].BlueGreen.StartWeight != 1000 || time.Duration(rel.Steps[6].Timeout) != time.Minute {
		t.Fatalf("parsed %+v", rel)
	}
	// JSON is YAML; the JSON form round-trips.
	js, err := json.Marshal(rel)
	if err != nil {
		t.Fatal(err)
	}
	again, err := rollout.ParseRelease(js, "v2.json")
	if err != nil {
		t.Fatalf("%v\n%s", err, js)
	}
	if js2, _ := json.Marshal(again); string(js2) != string(js) {
		t.Fatalf("round trip:\n%s\n%s", js, js2)
	}
}

// A bad manifest is refused before anything moves, with the file, the
// line and the step.
func TestParseReleaseErrorsNameFileLineAndStep(t *testing.T) {
	for _, tc := range []struct{ name, doc, want string }{
		{"unknown field", "id: a\nversion: v2\nsteps:\n  - setWeight: {wieght: 10}\n", "release r.yaml:4: line 4: field wieght not found"},
		{"two kinds", "id: a\nversion: v2\nsteps:\n  - pause: {}\n  - pause: {}\n    setWeight: {weight: 1}\n", "r.yaml:5: step 1: two kinds (setWeight, pause)"},
		{"no kind", "id: a\nversion: v2\nsteps:\n  - name: x\n", "r.yaml:4: step 0 (x): no kind"},
		{"weight range", "id: a\nversion: v2\nsteps:\n  - pause: {}\n  - canary: {weights: [100, 12000]}\n", "r.yaml:5: step 1: canary: weight 12000 basis points is outside 0..10000"},
		{"percent range", "id: a\nversion: v2\nsteps:\n  - rampFlag: {flag: f, percentages: [50, 150]}\n", "percentage 150 is outside 0..100"},
		{"phase", "id: a\nversion: v2\nsteps:\n  - migration: {name: m, phase: drop}\n", `phase "drop": want start, backfill, switch-reads or complete`},
		{"duplicate name", "id: a\nversion: v2\nsteps:\n  - name: x\n    pause: {}\n  - name: x\n    pause: {}\n", `r.yaml:6: step 1 (x): name "x" already used by step 0`},
		{"bad id", "id: ../a\nversion: v2\nsteps:\n  - pause: {}\n", "invalid rollout id"},
		{"no steps", "id: a\nversion: v2\n", "no steps"},
		{"two upgrades", "id: a\nversion: v2\nsteps:\n  - upgrade: {}\n  - blueGreen: {}\n", "2 upgrade or blue-green steps"},
		{"bad duration", "id: a\nversion: v2\nsteps:\n  - pause: {duration: soon}\n", `line 4: duration "soon"`},
		{"bad analyzer name", "id: a\nversion: v2\nsteps:\n  - analyze: {analyzer: \"$(rm -rf)\"}\n", `analyzer "$(rm -rf)"`},
		{"two documents", "id: a\nversion: v2\nsteps:\n  - pause: {}\n---\nid: b\n", "more than one document"},
		{"empty", "", "empty manifest"},
		{"too large", "id: a\n#" + strings.Repeat("x", rollout.MaxReleaseSize) + "\n", "more than 65536"},
	} {
		_, err := rollout.ParseRelease([]byte(tc.doc), "r.yaml")
		var re *rollout.ReleaseError
		if !errors.As(err, &re) || !errors.Is(err, rollout.ErrInvalidRelease) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want a *ReleaseError with %q", tc.name, err, tc.want)
		}
	}
}

// bindingsOf returns the fakes of e as a process of version binds them;
// analyzers only lists the names that process knows.
func bindingsOf(e *env, version string, analyzers ...string) rollout.Bindings {
	b := rollout.Bindings{Version: version, Upgrader: e.up, Weights: e.w, Flags: e.f, Migrations: e.m, Registry: e.reg,
		Analyzers: map[string]rollout.Analyzer{}}
	for _, a := range analyzers {
		b.Analyzers[a] = e.a
	}
	return b
}

// Both generations bind the same manifest, each to its own adapters: the
// old binary need not know the analyzers only the new one runs, the new
// one must; and both build the same plan, so that the new process loads
// the state the old one wrote.
func TestReleaseBoundByBothSides(t *testing.T) {
	rel, err := rollout.ParseRelease([]byte(manifestV2), "v2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	old, err := rel.Plan(bindingsOf(e, "v1"))
	if err != nil {
		t.Fatalf("the old side, which runs only the expand and the handoff: %v", err)
	}
	if _, err := rel.Plan(bindingsOf(e, "v2", "errors", "canary")); err == nil || !strings.Contains(err.Error(), `v2.yaml:9: step 3: analyzer "rows-agree" is not known to version v2`) {
		t.Fatalf("the new side without rows-agree: %v", err)
	}
	nw, err := rel.Plan(bindingsOf(e, "v2", "errors", "canary", "rows-agree"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range nw.Steps {
		names = append(names, s.Name)
	}
	wantCalls(t, names, "migration-split_name-start", "blue-green-v2-start-weight", "blue-green-v2",
		"canary-weight-5000", "canary-analysis-5000", "canary-weight-10000", "canary-analysis-10000",
		"ramp-flag-read-new-name", "migration-split_name-backfill", "migration-split_name-switch-reads",
		"wait-old-gone-v2", "migration-split_name-complete")
	if _, err := rollout.New(context.Background(), old, rollout.Options{Store: e.store, Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	r, err := rollout.New(context.Background(), nw, rollout.Options{Store: e.store, Version: "v2"})
	if err != nil {
		t.Fatalf("the new side cannot load the old side's state: %v", err)
	}
	if st := r.Status(); st.Release == nil || st.Release.Binary != "/opt/orders/releases/v2/orders" {
		t.Fatalf("the state does not keep the manifest: %+v", st.Release)
	}
	// A manifest the old side cannot run is refused there: it has no
	// migration runner.
	b := bindingsOf(e, "v1")
	b.Migrations = nil
	if _, err := rel.Plan(b); err == nil || !strings.Contains(err.Error(), `step 0: migrations runner for migration "split_name" is not known to version v1`) {
		t.Fatalf("the old side without migrations: %v", err)
	}
}
