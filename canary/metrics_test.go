package canary_test

import (
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/canary/canarytest"
)

func TestWindowSlides(t *testing.T) {
	clock := canarytest.NewClock(canarytest.Epoch)
	m := canary.NewMetrics(canary.MetricsOptions{Window: 30 * time.Second, Resolution: 10 * time.Second, Clock: clock})
	if m.Window() != 30*time.Second {
		t.Fatalf("window %s", m.Window())
	}
	// 10 requests per second for 60 s, errors only in the first 20 s.
	for s := range 60 {
		for i := range 10 {
			clock.Set(canarytest.Epoch.Add(time.Duration(s)*time.Second + time.Duration(i)*100*time.Millisecond))
			m.Record(canary.Canary, time.Duration(s+1)*time.Millisecond, s < 20)
		}
	}
	w := m.Snapshot().Current()
	c := w.Of(canary.Canary)
	// The window holds intervals [30s,40s), [40s,50s), [50s,60s).
	if c.Requests != 300 || c.Errors != 0 || c.Latency.Count() != 300 {
		t.Fatalf("window: %d requests, %d errors, %d latencies; want 300, 0, 300", c.Requests, c.Errors, c.Latency.Count())
	}
	if p50 := c.Latency.Quantile(0.5); p50 < 44*time.Millisecond || p50 > 47*time.Millisecond {
		t.Fatalf("p50 %s, want about 45ms", p50)
	}
	if n, e := m.Totals(canary.Canary); n != 600 || e != 200 {
		t.Fatalf("totals %d/%d, want 600/200", n, e)
	}
	if s := w.Of(canary.Stable); s.Requests != 0 {
		t.Fatalf("stable has %d requests", s.Requests)
	}
	// An idle gap longer than the window empties it, and old slots are
	// not read back after the ring wraps.
	clock.Advance(5 * time.Minute)
	if c := m.Snapshot().Current().Of(canary.Canary); c.Requests != 0 {
		t.Fatalf("after idling: %d requests in the window", c.Requests)
	}
	m.Record(canary.Canary, time.Millisecond, true)
	if c := m.Snapshot().Current().Of(canary.Canary); c.Requests != 1 || c.Errors != 1 {
		t.Fatalf("after idling and one request: %d/%d", c.Requests, c.Errors)
	}
	// A late record for an interval already out of the window is not counted there.
	m.RecordAt(canary.Canary, canarytest.Epoch, time.Millisecond, true)
	if c := m.Snapshot().Current().Of(canary.Canary); c.Requests != 1 {
		t.Fatalf("stale record counted: %d", c.Requests)
	}
}

// TestRecordConcurrent records from many goroutines across interval
// boundaries; no count may be lost within the window.
func TestRecordConcurrent(t *testing.T) {
	clock := canarytest.NewClock(canarytest.Epoch)
	m := canary.NewMetrics(canary.MetricsOptions{Window: time.Minute, Resolution: time.Second, Clock: clock})
	var wg sync.WaitGroup
	const workers, per = 8, 2000
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				at := canarytest.Epoch.Add(time.Duration(i) * 10 * time.Millisecond)
				m.RecordAt(canary.Variant(w%2), at, time.Millisecond, i%10 == 0)
			}
		})
	}
	wg.Wait()
	clock.Set(canarytest.Epoch.Add(30 * time.Second))
	w := m.Snapshot().Current()
	for _, v := range []canary.Variant{canary.Stable, canary.Canary} {
		s := w.Of(v)
		if s.Requests != workers/2*per || s.Errors != workers/2*per/10 || s.Latency.Count() != workers/2*per {
			t.Errorf("%s: %d requests, %d errors, %d latencies", v, s.Requests, s.Errors, s.Latency.Count())
		}
	}
}

func TestRecordNoAllocs(t *testing.T) {
	m := canary.NewMetrics(canary.MetricsOptions{})
	if a := testing.AllocsPerRun(1000, func() { m.Record(canary.Stable, time.Millisecond, false) }); a != 0 {
		t.Errorf("Record allocates %v times", a)
	}
}
