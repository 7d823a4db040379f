package flags

import (
	"errors"
	"runtime"
	"sync"
	"testing"
	"time"
)

// TestSubscribeOrderUnderRace updates the store from two sources at once
// (a file reload racing an admin change, say) and checks that subscribers
// see the events in the order the configurations took effect.
func TestSubscribeOrderUnderRace(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var mu sync.Mutex
	var got []Event
	s.Subscribe(func(e Event) {
		runtime.Gosched() // widen the window in which another update could overtake
		mu.Lock()
		got = append(got, e)
		mu.Unlock()
	})
	const n = 300
	var wg sync.WaitGroup
	for _, src := range []string{"file", "admin"} {
		wg.Go(func() {
			for i := range n {
				cfg := Config{Flags: map[string]Flag{src: {Type: TypeInt, Variants: map[string]any{"v": i}, Default: "v"}}}
				if i%10 == 9 {
					cfg.Flags[src] = Flag{Type: TypeInt, Variants: map[string]any{"v": i}, Default: "missing"} // rejected
				}
				_ = s.Set(src, cfg)
			}
		})
	}
	within(t, 30*time.Second, "two sources updating concurrently", wg.Wait)
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2*n {
		t.Fatalf("%d events, want %d", len(got), 2*n)
	}
	rejected := 0
	var last uint64
	for i, e := range got {
		if e.Kind == EventRejected {
			rejected++
		}
		if e.Version < last || (e.Kind == EventUpdated && e.Version == last) {
			t.Fatalf("event %d (%s, kind %d) has version %d after version %d: delivered out of order", i, e.Source, e.Kind, e.Version, last)
		}
		last = e.Version
	}
	if rejected != 2*n/10 {
		t.Fatalf("%d rejections, want %d", rejected, 2*n/10)
	}
	if last != s.Version() {
		t.Fatalf("last event version %d, store at %d", last, s.Version())
	}
}

// TestSubscriberMayUnsubscribe: ordering must not turn an unsubscribe from
// inside a callback into a deadlock.
func TestSubscriberMayUnsubscribe(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	calls := 0
	var cancel func()
	cancel = s.Subscribe(func(Event) { calls++; cancel() })
	for i := range 3 {
		if err := s.Set("code", Config{Flags: map[string]Flag{"a": {Type: TypeInt, Variants: map[string]any{"v": i}, Default: "v"}}}); err != nil {
			t.Fatal(err)
		}
	}
	if calls != 1 {
		t.Fatalf("%d calls after unsubscribing in the first", calls)
	}
}

// TestRemoveRejectionReported: a refused Remove is reported like a refused
// Set (OnReject, subscribers), and nothing changes.
func TestRemoveRejectionReported(t *testing.T) {
	var rejected []error
	s, err := New(Options{OnReject: func(err error) { rejected = append(rejected, err) }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var events []Event
	s.Subscribe(func(e Event) { events = append(events, e) })
	if err := s.Set("base", Config{Flags: map[string]Flag{"a": {Variants: onOff, Default: "on"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("dependent", Config{Flags: map[string]Flag{"b": {Variants: onOff, Default: "on",
		Prerequisites: []Prerequisite{{Flag: "a", Variants: []string{"on"}}}}}}); err != nil {
		t.Fatal(err)
	}
	v := s.Version()
	err = s.Remove("base")
	if !errors.Is(err, ErrInvalid) {
		t.Fatalf("Remove of a prerequisite's source = %v, want ErrInvalid", err)
	}
	if len(rejected) != 1 || !errors.Is(rejected[0], ErrInvalid) {
		t.Fatalf("OnReject got %v", rejected)
	}
	last := events[len(events)-1]
	if last.Kind != EventRejected || last.Source != "base" || last.Version != v {
		t.Fatalf("last event %+v, want a rejection of base at version %d", last, v)
	}
	if s.Version() != v || !s.Bool("a", EvalContext{}, false) {
		t.Fatal("a refused Remove changed the configuration")
	}
}
