package openfeature_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	of "github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"
	"go.uber.org/goleak"

	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/flags/openfeature"
)

// suiteDeadline bounds the package's tests (about a second), so that a
// test waiting for something that never happens fails within a minute,
// with every goroutine's stack, rather than at go test's timeout.
const suiteDeadline = 60 * time.Second

func TestMain(m *testing.M) {
	flag.Parse()
	if flag.Lookup("test.bench").Value.String() == "" {
		time.AfterFunc(suiteDeadline, func() {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "FAIL: flags/openfeature tests still running after %v: a test waits for something that will not happen\n\n%s\n", suiteDeadline, buf)
			os.Exit(2)
		})
	}
	goleak.VerifyTestMain(m)
}

// receive returns the provider's next event, or fails saying what it
// waited for.
func receive(t *testing.T, p *openfeature.Provider, what string) of.Event {
	t.Helper()
	select {
	case ev := <-p.EventChannel():
		return ev
	case <-time.After(10 * time.Second):
		t.Fatalf("no event within 10s: waited for %s", what)
		return of.Event{}
	}
}

const flagsYAML = `
flags:
  new-checkout:
    variants: {on: true, off: false}
    default: off
    metadata: {owner: payments}
    rules:
      - if: {attr: plan, op: equals, value: pro}
        serve: on
  color:
    variants: {red: "#f00", blue: "#00f"}
    default: red
  limit:
    variants: {low: 10, high: 1000}
    default: low
    serve:
      rollout: [{variant: low, weight: 0}, {variant: high, weight: 1}]
  ratio:
    type: float
    variants: {a: 0.25}
    default: a
  layout:
    variants:
      v1: {columns: 2}
    default: v1
  killed:
    variants: {on: true, off: false}
    default: on
    disabled: true
    offVariant: off
`

type env struct {
	store  *flags.Store
	src    *flags.FileSource
	path   string
	api    *of.EvaluationAPI
	client *of.Client
	events chan event
}

type event struct {
	kind of.EventType
	d    of.EventDetails
}

func setup(t *testing.T) *env {
	t.Helper()
	e := &env{events: make(chan event, 64)}
	e.path = filepath.Join(t.TempDir(), "flags.yaml")
	write(t, e.path, flagsYAML)
	var err error
	if e.store, err = flags.New(flags.Options{}); err != nil {
		t.Fatal(err)
	}
	if e.src, err = flags.NewFileSource(e.store, flags.FileOptions{Paths: []string{e.path}}); err != nil {
		t.Fatal(err)
	}
	e.api = isolated.NewAPI()
	for _, k := range []of.EventType{of.ProviderReady, of.ProviderConfigChange, of.ProviderStale, of.ProviderError} {
		cb := func(d of.EventDetails) { e.events <- event{k, d} }
		e.api.AddHandler(k, &cb)
	}
	ctx := context.Background()
	if err := e.api.SetProviderAndWait(ctx, openfeature.New(e.store, openfeature.Options{})); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		e.api.Shutdown(context.Background())
		e.src.Close()
		e.store.Close()
	})
	e.client = e.api.NewClient()
	return e
}

func write(t *testing.T, path, body string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// wait collects events until it has seen each wanted kind. The SDK runs
// each handler on its own goroutine, so events of one update may arrive in
// any order.
func (e *env) wait(t *testing.T, want ...of.EventType) map[of.EventType]of.EventDetails {
	t.Helper()
	got := map[of.EventType]of.EventDetails{}
	timeout := time.After(10 * time.Second)
	for len(got) < len(want) {
		select {
		case ev := <-e.events:
			for _, w := range want {
				if ev.kind == w {
					got[w] = ev.d
				}
			}
		case <-timeout:
			t.Fatalf("saw %v within 10s, want %v", got, want)
		}
	}
	return got
}

func TestClientEvaluations(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	pro := of.NewEvaluationContext("user-1", map[string]any{"plan": "pro"})

	b, err := e.client.BooleanValueDetails(ctx, "new-checkout", false, pro)
	if err != nil || !b.Value || b.Variant != "on" || b.Reason != of.TargetingMatchReason {
		t.Errorf("bool: %+v, %v", b, err)
	}
	if owner, _ := b.FlagMetadata.GetString("owner"); owner != "payments" {
		t.Errorf("metadata: %v", b.FlagMetadata)
	}
	b, _ = e.client.BooleanValueDetails(ctx, "new-checkout", true, of.NewEvaluationContext("user-2", nil))
	if b.Value || b.Reason != of.DefaultReason {
		t.Errorf("bool without plan: %+v", b)
	}
	s, err := e.client.StringValueDetails(ctx, "color", "", pro)
	if err != nil || s.Value != "#f00" || s.Reason != of.StaticReason {
		t.Errorf("string: %+v, %v", s, err)
	}
	i, err := e.client.IntValueDetails(ctx, "limit", 0, pro)
	if err != nil || i.Value != 1000 || i.Variant != "high" || i.Reason != of.SplitReason {
		t.Errorf("int: %+v, %v", i, err)
	}
	f, err := e.client.FloatValueDetails(ctx, "ratio", 0, pro)
	if err != nil || f.Value != 0.25 {
		t.Errorf("float: %+v, %v", f, err)
	}
	o, err := e.client.ObjectValueDetails(ctx, "layout", nil, pro)
	if m, _ := o.Value.(map[string]any); err != nil || m["columns"] != 2 {
		t.Errorf("object: %+v, %v", o, err)
	}
	k, err := e.client.BooleanValueDetails(ctx, "killed", true, pro)
	if err != nil || k.Value || k.Reason != of.DisabledReason || k.Variant != "off" {
		t.Errorf("disabled: %+v, %v", k, err)
	}
	nf, err := e.client.BooleanValueDetails(ctx, "missing", true, pro)
	if err == nil || !nf.Value || nf.ErrorCode != of.FlagNotFoundCode || nf.Reason != of.ErrorReason {
		t.Errorf("not found: %+v, %v", nf, err)
	}
	tm, err := e.client.BooleanValueDetails(ctx, "color", true, pro)
	if err == nil || !tm.Value || tm.ErrorCode != of.TypeMismatchCode {
		t.Errorf("type mismatch: %+v, %v", tm, err)
	}
	if e.client.State() != of.ReadyState {
		t.Errorf("state %s", e.client.State())
	}
}

func TestEvents(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	e.wait(t, of.ProviderReady)

	// A reload: CONFIGURATION_CHANGED naming the changed flag.
	write(t, e.path, flagsYAML+"  extra:\n    variants: {x: true}\n    default: x\n")
	d := e.wait(t, of.ProviderConfigChange)[of.ProviderConfigChange]
	if len(d.FlagChanges) != 1 || d.FlagChanges[0] != "extra" {
		t.Errorf("changed flags %v, want [extra]", d.FlagChanges)
	}
	if !e.client.Boolean(ctx, "extra", false, of.EvaluationContext{}) {
		t.Error("new flag not served")
	}

	// A rejected file: STALE, and the last good configuration still served.
	write(t, e.path, "flags:\n  color:\n    variants: {red: 1}\n    default: blue\n")
	d = e.wait(t, of.ProviderStale)[of.ProviderStale]
	if d.EventMetadata["errorCode"] != "PARSE_ERROR" || !strings.Contains(d.Message, `unknown variant "blue"`) {
		t.Errorf("stale event: %+v", d)
	}
	if e.client.State() != of.StaleState {
		t.Errorf("state %s, want STALE", e.client.State())
	}
	if !e.client.Boolean(ctx, "extra", false, of.EvaluationContext{}) {
		t.Error("last good configuration not served while stale")
	}

	// Fixed: READY again, then CONFIGURATION_CHANGED.
	write(t, e.path, flagsYAML)
	d = e.wait(t, of.ProviderReady, of.ProviderConfigChange)[of.ProviderConfigChange]
	if len(d.FlagChanges) != 1 || d.FlagChanges[0] != "extra" {
		t.Errorf("changed flags %v, want [extra]", d.FlagChanges)
	}
	if e.client.State() != of.ReadyState {
		t.Errorf("state %s, want READY", e.client.State())
	}

	// A run-time change through the store is an event too.
	if err := e.store.SetDisabled("color", true); err != nil {
		t.Fatal(err)
	}
	e.wait(t, of.ProviderConfigChange)
	if s, _ := e.client.StringValueDetails(ctx, "color", "", of.EvaluationContext{}); s.Reason != of.DisabledReason {
		t.Errorf("after SetDisabled: %+v", s)
	}
}

func TestProviderShutdownIsReusable(t *testing.T) {
	store, err := flags.New(flags.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p := openfeature.New(store, openfeature.Options{Name: "x"})
	if p.Metadata().Name != "x" {
		t.Errorf("name %q", p.Metadata().Name)
	}
	p.Shutdown() // before Init: no-op
	if err := p.Init(of.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	p.Shutdown()
	p.Shutdown()
	// After Shutdown no event is forwarded, and the update is not blocked.
	if err := store.Set("code", flags.Config{Flags: map[string]flags.Flag{"a": {Variants: map[string]any{"on": true}, Default: "on"}}}); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-p.EventChannel():
		t.Errorf("event after Shutdown: %+v", ev)
	default:
	}
	if err := store.Set("code", flags.Config{Flags: map[string]flags.Flag{"a": {}}}); !errors.Is(err, flags.ErrInvalid) {
		t.Errorf("invalid set: %v", err)
	}
}

func TestProviderDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	e := setup(t)
	p := openfeature.New(e.store, openfeature.Options{})
	ctx := context.Background()
	flat := of.FlattenedContext{"targetingKey": "user-1", "plan": "pro"}
	for name, fn := range map[string]func(){
		"bool":   func() { p.BooleanEvaluation(ctx, "new-checkout", false, flat) },
		"string": func() { p.StringEvaluation(ctx, "color", "", flat) },
		"int":    func() { p.IntEvaluation(ctx, "limit", 0, flat) },
		"float":  func() { p.FloatEvaluation(ctx, "ratio", 0, flat) },
		"object": func() { p.ObjectEvaluation(ctx, "layout", nil, flat) },
	} {
		if n := testing.AllocsPerRun(100, fn); n != 0 {
			t.Errorf("%s: %v allocs", name, n)
		}
	}
}

// TestStalePerSource: a rejected file keeps the provider STALE through
// changes from other sources (an admin change, code); only that file's
// next accepted update makes it READY again.
func TestStalePerSource(t *testing.T) {
	store, err := flags.New(flags.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p := openfeature.New(store, openfeature.Options{})
	if err := p.Init(of.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()
	good := flags.Config{Flags: map[string]flags.Flag{"a": {Variants: map[string]any{"on": true, "off": false}, Default: "on"}}}
	bad := flags.Config{Flags: map[string]flags.Flag{"a": {Variants: map[string]any{"on": true}, Default: "nope"}}}
	code := flags.Config{Flags: map[string]flags.Flag{"b": {Variants: map[string]any{"on": true}, Default: "on"}}}
	next := func() of.EventType {
		t.Helper()
		select {
		case ev := <-p.EventChannel():
			return ev.EventType
		default:
			t.Fatal("no event")
			return ""
		}
	}
	expect := func(step string, want ...of.EventType) {
		t.Helper()
		for _, w := range want {
			if got := next(); got != w {
				t.Fatalf("%s: event %s, want %s", step, got, w)
			}
		}
		select {
		case ev := <-p.EventChannel():
			t.Fatalf("%s: unexpected event %s", step, ev.EventType)
		default:
		}
	}
	if err := store.Set("file", good); err != nil {
		t.Fatal(err)
	}
	expect("file accepted", of.ProviderConfigChange)
	if err := store.Set("file", bad); err == nil {
		t.Fatal("bad config accepted")
	}
	expect("file rejected", of.ProviderStale)
	if err := store.SetDisabled("a", true); err != nil {
		t.Fatal(err)
	}
	expect("admin change while the file is bad", of.ProviderConfigChange)
	if err := store.Set("code", code); err != nil {
		t.Fatal(err)
	}
	expect("code change while the file is bad", of.ProviderConfigChange)
	if err := store.Set("code", bad); err == nil {
		t.Fatal("bad config accepted")
	}
	expect("code rejected too", of.ProviderStale)
	if err := store.Set("file", good); err != nil {
		t.Fatal(err)
	}
	expect("file fixed, code still bad", of.ProviderConfigChange)
	if err := store.Set("code", code); err != nil {
		t.Fatal(err)
	}
	expect("every source good", of.ProviderReady, of.ProviderConfigChange)
}

// TestEventsNeverBlockUpdates: an SDK that never reads its event channel
// must not hold up reloads, admin changes or Close; state changes it
// missed are sent once there is room.
func TestEventsNeverBlockUpdates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "flags.yaml")
	write(t, path, "flags:\n  a:\n    variants: {on: true}\n    default: on\n")
	store, err := flags.New(flags.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	src, err := flags.NewFileSource(store, flags.FileOptions{Paths: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	p := openfeature.New(store, openfeature.Options{EventBuffer: 1})
	if err := p.Init(of.EvaluationContext{}); err != nil {
		t.Fatal(err)
	}
	defer p.Shutdown()

	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 50 {
			_ = store.SetDisabled("a", i%2 == 0)
		}
		_ = store.Set("code", flags.Config{Flags: map[string]flags.Flag{"a": {}}}) // rejected: STALE
		_ = src.Close()                                                            // takes the reload lock
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("updates blocked by an SDK that does not read its events")
	}
	if d := p.Dropped(); d != 49 {
		t.Errorf("Dropped() = %d, want 49 (50 changes, room for one)", d)
	}
	if ev := receive(t, p, "the one CONFIGURATION_CHANGED that fit"); ev.EventType != of.ProviderConfigChange {
		t.Fatalf("first event %s", ev.EventType)
	}
	// The STALE that found no room goes out before the next event.
	if err := store.ClearOverride("a"); err != nil {
		t.Fatal(err)
	}
	if ev := receive(t, p, "the STALE kept back"); ev.EventType != of.ProviderStale {
		t.Fatalf("after draining: %s, want the STALE kept back", ev.EventType)
	}
	if d := p.Dropped(); d != 50 {
		t.Errorf("Dropped() = %d, want 50", d)
	}
}

// TestDocumentSourceStaleUntilFresh: a host restarted while its engine is
// down serves its cached document and the SDK reports STALE until the
// transport delivers a version: then READY and CONFIGURATION_CHANGED. A
// lost transport is STALE again, and the same version delivered once more
// is READY.
func TestDocumentSourceStaleUntilFresh(t *testing.T) {
	cache := filepath.Join(t.TempDir(), "flags.cache")
	doc := func(v uint64, def string) flags.Document {
		return flags.Document{Version: v, Name: "fleet.yaml", Data: []byte(
			"flags:\n  checkout:\n    variants: {on: true, off: false}\n    default: " + def + "\n")}
	}
	// A previous run applied version 3.
	prev, err := flags.New(flags.Options{})
	if err != nil {
		t.Fatal(err)
	}
	src, err := flags.NewDocumentSource(prev, flags.DocumentOptions{CacheFile: cache})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Apply(doc(3, "on")); err != nil {
		t.Fatal(err)
	}
	prev.Close()

	store, err := flags.New(flags.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	if src, err = flags.NewDocumentSource(store, flags.DocumentOptions{CacheFile: cache}); err != nil {
		t.Fatal(err)
	}
	e := &env{store: store, events: make(chan event, 64), api: isolated.NewAPI()}
	for _, k := range []of.EventType{of.ProviderReady, of.ProviderConfigChange, of.ProviderStale, of.ProviderError} {
		cb := func(d of.EventDetails) { e.events <- event{k, d} }
		e.api.AddHandler(k, &cb)
	}
	ctx := context.Background()
	if err := e.api.SetProviderAndWait(ctx, openfeature.New(store, openfeature.Options{})); err != nil {
		t.Fatal(err)
	}
	defer e.api.Shutdown(context.Background())
	e.client = e.api.NewClient()
	e.wait(t, of.ProviderReady)

	// The cached version serves; the first evaluation sends the STALE
	// owed since Init, after the SDK's READY.
	if !e.client.Boolean(ctx, "checkout", false, of.EvaluationContext{}) {
		t.Error("the cached version is not served")
	}
	d := e.wait(t, of.ProviderStale)[of.ProviderStale]
	if !strings.Contains(d.Message, "serving version 3 from the cache") {
		t.Errorf("STALE says %q", d.Message)
	}
	if st := e.client.State(); st != of.StaleState {
		t.Errorf("state %s, want STALE", st)
	}

	// The engine is back with version 4.
	if err := src.Apply(doc(4, "off")); err != nil {
		t.Fatal(err)
	}
	got := e.wait(t, of.ProviderReady, of.ProviderConfigChange)
	if ch := got[of.ProviderConfigChange].FlagChanges; len(ch) != 1 || ch[0] != "checkout" {
		t.Errorf("changed flags %v", ch)
	}
	if st := e.client.State(); st != of.ReadyState || e.client.Boolean(ctx, "checkout", true, of.EvaluationContext{}) {
		t.Errorf("state %s, or version 4 not served", st)
	}

	// Lost again, then the same version confirmed.
	src.MarkStale(errors.New("engine unreachable"))
	if d := e.wait(t, of.ProviderStale)[of.ProviderStale]; !strings.Contains(d.Message, "engine unreachable") {
		t.Errorf("STALE says %q", d.Message)
	}
	if err := src.Apply(doc(4, "off")); err != nil {
		t.Fatal(err)
	}
	e.wait(t, of.ProviderReady)
	if st := e.client.State(); st != of.ReadyState {
		t.Errorf("state %s after the version in force was confirmed, want READY", st)
	}
}
