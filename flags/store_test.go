package flags

import (
	"runtime"
	"sync"
	"testing"
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
	wg.Wait()
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
