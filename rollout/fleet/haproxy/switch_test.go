package haproxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout/fleet/haproxy"
	"github.com/batonhq/baton/rollout/fleet/haproxy/haproxytest"
)

// The switch and the flip back under load: no request fails, every
// request started after ToGreen returned is answered by green, every one
// after ToBlue by blue.
func TestSwitchAndFlipBackUnderLoad(t *testing.T) {
	r := newRig(t, 5*time.Millisecond, haproxy.SwitchOptions{})
	ctx := context.Background()
	load := haproxytest.StartLoad(r.url, 8)
	await(t, "blue serving", func() bool { return served(r.blue) >= 50 })

	if err := r.sw.ToGreen(ctx); err != nil {
		load.Stop()
		t.Fatal(err)
	}
	switched := time.Now()
	if n := inFlight(r.blue); n != 0 {
		t.Errorf("ToGreen returned with %d requests in progress on blue", n)
	}
	checkServing(t, r.sw0(), "green")
	g := served(r.green)
	await(t, "green serving", func() bool { return served(r.green) >= g+50 })

	flipStart := time.Now()
	if err := r.sw.ToBlue(ctx); err != nil {
		load.Stop()
		t.Fatal(err)
	}
	flipped := time.Now()
	if n := inFlight(r.green); n != 0 {
		t.Errorf("ToBlue returned with %d requests in progress on green", n)
	}
	checkServing(t, r.sw0(), "blue")
	b := served(r.blue)
	await(t, "blue serving again", func() bool { return served(r.blue) >= b+50 })
	reqs := load.Stop()

	if f := haproxytest.Failed(reqs); len(f) > 0 {
		t.Errorf("%d of %d requests failed; first: %v", len(f), len(reqs), f[0].Err)
	}
	var between []haproxytest.Request
	for _, q := range haproxytest.StartedAfter(reqs, switched) {
		if q.End.Before(flipStart) {
			between = append(between, q)
		}
	}
	checkAll(t, "after the switch", between, "v2")
	checkAll(t, "after the flip back", haproxytest.StartedAfter(reqs, flipped), "v1")
	t.Logf("%d requests, switched at +%s, flipped back at +%s", len(reqs), switched.Sub(reqs[0].Start), flipped.Sub(reqs[0].Start))
}

func (r *rig) sw0() *haproxy.Client { return r.p.Client() }

// When ToGreen returns, blue has nothing in progress: stopping blue's
// processes the hard way right then loses no request. A switch that does
// not wait for the drain (or puts blue in maintenance) fails here.
func TestSwitchWaitsForDrain(t *testing.T) {
	r := newRig(t, 300*time.Millisecond, haproxy.SwitchOptions{})
	load := haproxytest.StartLoad(r.url, 8)
	await(t, "slow requests in progress on blue", func() bool { return served(r.blue) >= 8 && inFlight(r.blue) >= 4 })

	err := r.sw.ToGreen(context.Background())
	n := inFlight(r.blue)
	for _, b := range r.blue {
		b.Kill()
	}
	if err != nil {
		load.Stop()
		t.Fatal(err)
	}
	g := served(r.green)
	await(t, "green serving", func() bool { return served(r.green) >= g+16 })
	reqs := load.Stop()
	if n != 0 {
		t.Errorf("ToGreen returned with %d requests in progress on blue", n)
	}
	if f := haproxytest.Failed(reqs); len(f) > 0 {
		t.Errorf("%d of %d requests failed when blue stopped after the switch; first: %v", len(f), len(reqs), f[0].Err)
	}
}

// A name HAProxy does not know is reported with HAProxy's words and the
// name; a name that could carry a second command is refused before
// anything is sent.
func TestRuntimeErrors(t *testing.T) {
	r := newRig(t, 0, haproxy.SwitchOptions{Green: haproxy.Group{Servers: []string{"green1", "green9"}}})
	ctx := context.Background()
	c := r.p.Client()

	err := r.sw.ToGreen(ctx)
	var ce *haproxy.CommandError
	if !errors.Is(err, haproxy.ErrRuntime) || !errors.As(err, &ce) || ce.Reply != "No such server." ||
		!strings.Contains(err.Error(), "app/green9") {
		t.Errorf("switch to an unknown server: %v; want ErrRuntime naming app/green9 with \"No such server.\"", err)
	}
	if st := statuses(t, c); !up(st["blue1"]) || !up(st["blue2"]) {
		t.Errorf("blue after the failed switch: %v; want blue still up", st)
	}
	if _, err := c.Stats(ctx, "nosuch"); !errors.Is(err, haproxy.ErrRuntime) || !strings.Contains(err.Error(), "No such proxy.") {
		t.Errorf("stats of an unknown backend: %v; want ErrRuntime with \"No such proxy.\"", err)
	}
	if err := c.SetWeight(ctx, "app", "blue1", 300); err == nil {
		t.Error("weight 300 accepted")
	}
	for _, bad := range []string{"blue1;disable frontend app", "blue1 state maint", "blue1\nshow info", "app/blue1", ""} {
		if err := c.SetState(ctx, "app", bad, haproxy.Maint); !errors.Is(err, haproxy.ErrInvalidName) {
			t.Errorf("server name %q: %v; want ErrInvalidName", bad, err)
		}
		if err := c.SetWeight(ctx, bad, "blue1", 0); !errors.Is(err, haproxy.ErrInvalidName) {
			t.Errorf("backend name %q: %v; want ErrInvalidName", bad, err)
		}
	}
	if err := c.SetState(ctx, "app", "blue1", "maint;shutdown"); err == nil {
		t.Error("state \"maint;shutdown\" accepted")
	}
	if st := statuses(t, c); !up(st["blue1"]) || !up(st["blue2"]) {
		t.Errorf("blue after refused commands: %v; want blue untouched", st)
	}
}

// A green group that never comes up (its process is gone: health checks
// fail) is not switched to: blue keeps serving, and the error names the
// server and what HAProxy said of it.
func TestSwitchRefusesGroupNotUp(t *testing.T) {
	r := newRig(t, 0, haproxy.SwitchOptions{ReadyTimeout: 3 * time.Second})
	r.green[1].Kill()
	err := r.sw.ToGreen(context.Background())
	var ge *haproxy.GroupError
	if !errors.Is(err, haproxy.ErrNotReady) || !errors.As(err, &ge) || ge.Servers["green2"] == "" || ge.Servers["green1"] != "" {
		t.Fatalf("switch to a dead green2: %v; want ErrNotReady naming green2 only", err)
	}
	if !strings.Contains(err.Error(), "app/green2: DOWN") && !strings.Contains(err.Error(), "no check passed") {
		t.Errorf("error %q does not say green2 is DOWN or unchecked", err)
	}
	if st := statuses(t, r.p.Client()); !up(st["blue1"]) || !up(st["blue2"]) {
		t.Errorf("blue after the refused switch: %v; want blue up", st)
	}
}

// Repeating a switch is harmless, and a switch interrupted in its drain
// completes when run again.
func TestSwitchIdempotent(t *testing.T) {
	r := newRig(t, time.Second, haproxy.SwitchOptions{})
	load := haproxytest.StartLoad(r.url, 4)
	await(t, "requests in progress on blue", func() bool { return inFlight(r.blue) >= 2 })

	// Interrupted while blue drains.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.sw.ToGreen(ctx) }()
	await(t, "blue draining", func() bool {
		st := statuses(t, r.p.Client())
		return st["blue1"] == "DRAIN" && st["blue2"] == "DRAIN"
	})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("interrupted switch: %v; want context.Canceled", err)
	}
	for i := range 2 {
		if err := r.sw.ToGreen(context.Background()); err != nil {
			t.Fatalf("switch run %d: %v", i+2, err)
		}
		if n := inFlight(r.blue); n != 0 {
			t.Errorf("switch run %d returned with %d requests on blue", i+2, n)
		}
		checkServing(t, r.p.Client(), "green")
	}
	for range 2 {
		if err := r.sw.ToBlue(context.Background()); err != nil {
			t.Fatal(err)
		}
		checkServing(t, r.p.Client(), "blue")
	}
	if f := haproxytest.Failed(load.Stop()); len(f) > 0 {
		t.Errorf("%d requests failed; first: %v", len(f), f[0].Err)
	}
}

func up(status string) bool { return strings.HasPrefix(status, "UP") }

// A drain that outlasts DrainTimeout is an error naming the servers and
// their sessions, unless AllowUndrained.
func TestDrainTimeout(t *testing.T) {
	r := newRig(t, 3*time.Second, haproxy.SwitchOptions{DrainTimeout: 100 * time.Millisecond})
	load := haproxytest.StartLoad(r.url, 4)
	defer load.Stop()
	await(t, "requests in progress on blue", func() bool { return inFlight(r.blue) >= 4 })
	err := r.sw.ToGreen(context.Background())
	var ge *haproxy.GroupError
	if !errors.Is(err, haproxy.ErrDrainTimeout) || !errors.As(err, &ge) || !strings.Contains(err.Error(), "sessions") {
		t.Fatalf("drain of 3 s requests with a 100 ms timeout: %v; want ErrDrainTimeout with the sessions left", err)
	}
	lenient, err := haproxy.NewSwitch(haproxy.SwitchOptions{
		Client: r.p.Client(), Backend: "app", DrainTimeout: 100 * time.Millisecond, AllowUndrained: true,
		Blue: haproxy.Group{Servers: []string{"blue1", "blue2"}}, Green: haproxy.Group{Servers: []string{"green1", "green2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := lenient.ToGreen(context.Background()); err != nil {
		t.Errorf("with AllowUndrained: %v", err)
	}
	checkServing(t, r.p.Client(), "green")
}
