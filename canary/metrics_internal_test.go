package canary

import (
	"math"
	"reflect"
	"strconv"
	"testing"
	"time"
)

func TestBucketLayout(t *testing.T) {
	if bucketOf(0) != 0 || bucketOf(-5) != 0 {
		t.Fatal("non-positive latency not in bucket 0")
	}
	prev := 0
	for d := time.Duration(1); d < 200*time.Second; d = d*21/20 + 1 {
		i := bucketOf(d)
		if i < prev {
			t.Fatalf("bucketOf(%s) = %d, below bucketOf of a smaller latency (%d)", d, i, prev)
		}
		prev = i
		if i >= numBuckets {
			t.Fatalf("bucketOf(%s) = %d out of range", d, i)
		}
		if i < numBuckets-1 && (d < bucketLow(i) || d >= bucketLow(i+1)) {
			t.Fatalf("%s in bucket %d = [%s, %s)", d, i, bucketLow(i), bucketLow(i+1))
		}
		if d >= 16<<unitShift && i < numBuckets-1 {
			if w := float64(bucketLow(i+1)-bucketLow(i)) / float64(bucketLow(i)); w > 1.0/16+1e-9 {
				t.Fatalf("bucket %d is %.1f%% wide", i, 100*w)
			}
		}
	}
	if bucketOf(time.Hour) != numBuckets-1 {
		t.Fatal("an hour is not in the last bucket")
	}
	for i := 1; i < numBuckets; i++ {
		if bucketLow(i) <= bucketLow(i-1) || bucketOf(bucketLow(i)) != i {
			t.Fatalf("bucket %d starts at %s, which maps to %d", i, bucketLow(i), bucketOf(bucketLow(i)))
		}
	}
}

func TestQuantileAccuracy(t *testing.T) {
	var h Histogram
	// 1..10000 ms uniformly: p50 = 5 s, p99 = 9.9 s.
	for ms := 1; ms <= 10000; ms++ {
		h.counts[bucketOf(time.Duration(ms)*time.Millisecond)]++
		h.total++
	}
	for q, want := range map[float64]time.Duration{0.5: 5 * time.Second, 0.99: 9900 * time.Millisecond, 0: time.Millisecond} {
		got := h.Quantile(q)
		if rel := math.Abs(float64(got-want)) / float64(want); rel > 0.03 {
			t.Errorf("Quantile(%v) = %s, want %s within 3%%", q, got, want)
		}
	}
	var empty Histogram
	if empty.Quantile(0.5) != 0 {
		t.Error("empty histogram has a quantile")
	}
}

// TestCurrentAtMatchesSnapshot: the controller's direct sum of the current
// weight's intervals is what Snapshot().Current() gives.
func TestCurrentAtMatchesSnapshot(t *testing.T) {
	var clock manualClock
	m := NewMetrics(MetricsOptions{Window: time.Minute, Resolution: 5 * time.Second, Weight: 500, Clock: &clock})
	for i := range 3000 {
		at := time.Unix(0, int64(i)*int64(30*time.Millisecond))
		if i == 1200 {
			m.noteWeight(at, 2500)
		}
		v := Variant(i % 3)
		if i%2 == 0 {
			m.RecordKeyAt(v, "k"+strconv.Itoa(i%97), at, time.Duration(i%700)*time.Microsecond, i%31 == 0)
		} else {
			m.RecordAt(v, at, time.Duration(i%500)*time.Microsecond, i%29 == 0)
		}
	}
	at := time.Unix(0, int64(3000)*int64(30*time.Millisecond))
	got, want := m.currentAt(at), m.SnapshotAt(at).Current()
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("currentAt %+v\nCurrent %+v", got.Variants[Canary].Requests, want.Variants[Canary].Requests)
	}
	if want.Weight != 2500 || want.Of(Canary).Requests == 0 || want.Intervals == 12 {
		t.Fatalf("current: weight %d, %d canary requests, %d intervals", want.Weight, want.Of(Canary).Requests, want.Intervals)
	}
}

type manualClock struct{ t time.Time }

func (c *manualClock) Now() time.Time { return c.t }
