package rollout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/rollouttest"
)

const manifestSmall = `id: shop-v2
version: v2
steps:
  - blueGreen: {window: 2m, interval: 1m, analyzers: [ok], startWeight: 1000}
  - canary: {weights: [5000, 10000], analyzer: ok}
`

// newDriver returns a driver of version on e's store and clock, bound to
// e's fakes; weights is the process's own canary (each process has one).
func newDriver(t *testing.T, e *env, version string, weights *rollouttest.Weights, await func(context.Context) (bool, error)) *rollout.Driver {
	t.Helper()
	d, err := rollout.NewDriver(context.Background(), rollout.DriverOptions{
		Store: e.store, Version: version, Clock: e.clock, AwaitDrive: await,
		Bind: func(rel *rollout.Release) (rollout.Bindings, error) {
			b := bindingsOf(e, version, "ok")
			b.Weights = weights
			return b, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// driveUntil runs d while a helper advances the fake clock, until cond
// holds on the driver's current rollout; then it stops d and returns
// Run's error.
func driveUntil(t *testing.T, e *env, d *rollout.Driver, what string, cond func(rollout.Status) bool) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	tick := make(chan struct{})
	go func() {
		defer close(tick)
		for e.clock.WaitForWaiters(ctx, 1) == nil {
			e.clock.Advance(time.Minute)
		}
	}()
	defer func() { cancel(); <-tick }()
	for {
		switched := d.Changed()
		r := d.Current()
		var ch <-chan struct{}
		if r != nil {
			ch = r.Changed()
			if cond(r.Status()) {
				cancel()
				return <-done
			}
		}
		select {
		case err := <-done:
			return err
		case <-ch:
		case <-switched:
		case <-ctx.Done():
			t.Fatalf("waited %s for %s; state: %+v", runLimit, what, r.Status())
		}
	}
}

// A release started in the old process: validated and bound there,
// stored, driven to the handoff; the new process loads the same manifest
// from the store, binds it to its own adapters, starts at the weight the
// release set for it, and finishes; a restart of the new version serves
// at the release's weight again.
func TestDriverAcrossAHandoff(t *testing.T) {
	e := newEnv(t)
	rel, err := rollout.ParseRelease([]byte(manifestSmall), "shop-v2.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v1w := &rollouttest.Weights{Recorder: &rollouttest.Recorder{}}
	d1 := newDriver(t, e, "v1", v1w, func(context.Context) (bool, error) { return false, nil })
	if err := d1.Start(context.Background(), rel); err != nil {
		t.Fatal(err)
	}
	if err := driveUntil(t, e, d1, "the handoff", func(st rollout.Status) bool { return false }); err != nil {
		t.Fatalf("the old process's driver: %v, want nil after handing off for good", err)
	}
	wantCalls(t, e.rec.Calls(), "upgrade v2")
	if n := len(v1w.Calls()); n != 0 {
		t.Fatalf("the old process's own canary was set (%v): the start weight is the new process's", v1w.Calls())
	}

	v2w := &rollouttest.Weights{Recorder: e.rec}
	d2 := newDriver(t, e, "v2", v2w, nil)
	if w := v2w.Weight(); w != 1000 {
		t.Fatalf("the new process starts at weight %d, want the release's start weight 1000", w)
	}
	err = driveUntil(t, e, d2, "the release to succeed", func(st rollout.Status) bool { return st.Phase == rollout.PhaseSucceeded })
	wantErrIs(t, err, context.Canceled)
	wantCalls(t, e.rec.Calls(), "upgrade v2", "weight 1000", "analyze", "analyze", "bake-promote", "weight 5000", "analyze", "weight 10000", "analyze")

	again := &rollouttest.Weights{Recorder: &rollouttest.Recorder{}}
	newDriver(t, e, "v2", again, nil)
	if w := again.Weight(); w != 10000 {
		t.Fatalf("a restarted v2 serves at weight %d, want the release's 10000", w)
	}
	// A release id names one rollout.
	var ce *rollout.CommandError
	if err := d2.Start(context.Background(), rel); !errors.As(err, &ce) || !strings.Contains(ce.Reason, "started before") {
		t.Fatalf("starting the same release again: %v", err)
	}
}

// Start refuses, and stores nothing, when the manifest cannot be bound
// here or another release still runs.
func TestDriverStartValidatesBeforeAnythingMoves(t *testing.T) {
	e := newEnv(t)
	d := newDriver(t, e, "v1", e.w, nil)
	unknown, err := rollout.ParseRelease([]byte("id: shop-v3\nversion: v1\nsteps:\n  - analyze: {analyzer: missing}\n"), "v3.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background(), unknown); !errors.Is(err, rollout.ErrInvalidRelease) || !strings.Contains(err.Error(), `v3.yaml:4: step 0: analyzer "missing" is not known to version v1`) {
		t.Fatalf("a release naming an unknown analyzer: %v", err)
	}
	if _, _, err := e.store.Load(context.Background(), "shop-v3"); !errors.Is(err, rollout.ErrNotFound) {
		t.Fatalf("a refused release was stored: %v", err)
	}
	held, err := rollout.ParseRelease([]byte("id: hold\nversion: v1\nsteps:\n  - pause: {}\n"), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(context.Background(), held); err != nil {
		t.Fatal(err)
	}
	other, _ := rollout.ParseRelease([]byte("id: other\nversion: v1\nsteps:\n  - pause: {}\n"), "")
	var ce *rollout.CommandError
	if err := d.Start(context.Background(), other); !errors.As(err, &ce) || !strings.Contains(ce.Reason, `release "hold" is pending`) {
		t.Fatalf("a second release while one runs: %v", err)
	}
}

// POST /api/start takes a manifest (YAML or JSON), refuses a bad one with
// its line, and GET /api/status?wait= answers once the state moved.
func TestDriverAdminStartAndWatch(t *testing.T) {
	e := newEnv(t)
	d := newDriver(t, e, "v1", e.w, nil)
	c, _ := adminOnSocketHandler(t, d.Handler(rollout.HandlerOptions{}))
	if code, body := get(t, c, "/api/status"); code != 404 || !strings.Contains(body, "no rollout has been started") {
		t.Fatalf("status before any release: %d %s", code, body)
	}
	const yaml = "application/yaml"
	if code, body := post(t, c, "/api/start", yaml, "id: r1\nversion: v1\nsteps:\n  - pause: {duration: -1s}\n"); code != 400 || !strings.Contains(body, ":4: step 0: pause: duration -1s is outside") {
		t.Fatalf("a bad manifest: %d %s", code, body)
	}
	if code, body := post(t, c, "/api/start", "text/plain", "id: r1"); code != 415 {
		t.Fatalf("a manifest as text/plain: %d %s", code, body)
	}
	code, body := post(t, c, "/api/start", yaml, "id: r1\nversion: v1\nsteps:\n  - pause: {}\n    name: hold\n  - setWeight: {weight: 100}\n")
	if code != 200 || !strings.Contains(body, `"id":"r1"`) || !strings.Contains(body, `"name":"hold"`) {
		t.Fatalf("start: %d %s", code, body)
	}
	if code, body := post(t, c, "/api/start", "application/json", `{"id":"r2","version":"v1","steps":[{"pause":{}}]}`); code != 409 || !strings.Contains(body, `release \"r1\" is pending`) {
		t.Fatalf("a second start while r1 runs: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitFor(t, d.Current(), "hold waiting", stepWaiting("hold"))
	rev := d.Current().Status().Revision
	// Nothing moves: the watch answers at its timeout, unchanged.
	if code, body := get(t, c, fmt.Sprintf("/api/status?wait=%d&timeout=50ms", rev)); code != 200 || !strings.Contains(body, fmt.Sprintf(`"revision":%d,`, rev)) {
		t.Fatalf("watch with nothing moving: %d %s", code, body)
	}
	got := make(chan string, 1)
	go func() {
		_, body, err := doGet(c, fmt.Sprintf("/api/status?wait=%d&timeout=20s", rev))
		if err != nil {
			body = err.Error()
		}
		got <- body
	}()
	if code, body := post(t, c, "/api/promote", "application/json", ""); code != 200 {
		t.Fatalf("promote: %d %s", code, body)
	}
	select {
	case body := <-got:
		if !strings.Contains(body, "promoted by operator") {
			t.Fatalf("the watch answered without the promotion: %s", body)
		}
	case <-time.After(runLimit):
		t.Fatal("the watch did not answer after the promotion")
	}
	waitFor(t, d.Current(), "r1 to succeed", func(st rollout.Status) bool { return st.Phase == rollout.PhaseSucceeded })
	cancel()
	wantErrIs(t, <-done, context.Canceled)
	for _, bad := range []string{"wait=x", "wait=1&timeout=1h", "wait=-1"} {
		if code, _ := get(t, c, "/api/status?"+bad); code != 400 {
			t.Errorf("GET /api/status?%s: %d, want 400", bad, code)
		}
	}
}

// The console keeps a page per release: GET /api/releases lists the
// index newest first with each one's phase, GET /api/releases/{id} and
// /releases/{id} show a past one's stored state with every command
// refused, the one served now redirects to the live page, and an unknown
// or invalid id is refused.
func TestDriverReleasePages(t *testing.T) {
	e := newEnv(t)
	d := newDriver(t, e, "v1", e.w, nil)
	c, _ := adminOnSocketHandler(t, d.Handler(rollout.HandlerOptions{}))
	if code, body := get(t, c, "/api/releases"); code != 200 || strings.TrimSpace(body) != "[]" {
		t.Fatalf("releases before any: %d %s", code, body)
	}
	const yaml = "application/yaml"
	if code, body := post(t, c, "/api/start", yaml, "id: r1\nversion: v1\nsteps:\n  - pause: {}\n    name: hold\n"); code != 200 {
		t.Fatalf("start r1: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	waitFor(t, d.Current(), "hold waiting", stepWaiting("hold"))
	if code, body := post(t, c, "/api/promote", "application/json", ""); code != 200 {
		t.Fatalf("promote: %d %s", code, body)
	}
	waitFor(t, d.Current(), "r1 to succeed", func(st rollout.Status) bool { return st.Phase == rollout.PhaseSucceeded })
	if code, body := post(t, c, "/api/start", yaml, "id: r2\nversion: v1\nsteps:\n  - pause: {}\n    name: gate\n"); code != 200 {
		t.Fatalf("start r2: %d %s", code, body)
	}
	code, body := get(t, c, "/api/releases")
	var rs []rollout.ReleaseSummary
	if err := json.Unmarshal([]byte(body), &rs); code != 200 || err != nil || len(rs) != 2 ||
		rs[0].ID != "r2" || !rs[0].Active || rs[1].ID != "r1" || rs[1].Active || rs[1].Phase != rollout.PhaseSucceeded || rs[1].Version != "v1" {
		t.Fatalf("releases: %d %s", code, body)
	}
	code, body = get(t, c, "/api/releases/r1")
	var v rollout.StatusView
	if err := json.Unmarshal([]byte(body), &v); code != 200 || err != nil || v.ID != "r1" || v.Phase != rollout.PhaseSucceeded ||
		len(v.Steps) != 1 || v.Steps[0].Name != "hold" || v.Revision == 0 || !strings.Contains(v.Refusals[rollout.CmdRetry], `"r2" is`) {
		t.Fatalf("r1: %d %s", code, body)
	}
	if code, body := get(t, c, "/releases"); code != 200 || !strings.Contains(body, `<a href="/releases/r1">r1</a>`) || !strings.Contains(body, "r2</a> (served now)") {
		t.Fatalf("releases page: %d %s", code, body)
	}
	if code, body := get(t, c, "/releases/r1"); code != 200 || !strings.Contains(body, `data-release="r1"`) || !strings.Contains(body, "rollout <code>r1</code>") {
		t.Fatalf("r1's page: %d %s", code, body)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://admin/releases/r2", nil)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/" {
		t.Fatalf("the page of the release served now: %d to %q, want a redirect to /", resp.StatusCode, resp.Header.Get("Location"))
	}
	for path, want := range map[string]int{"/api/releases/nope": 404, "/api/releases/has%20space": 400, "/releases/nope": 404, "/api/releases/" + rollout.DefaultIndexID: 404} {
		if code, body := get(t, c, path); code != want {
			t.Errorf("GET %s: %d %s, want %d", path, code, body, want)
		}
	}
	cancel()
	wantErrIs(t, <-done, context.Canceled)
}
