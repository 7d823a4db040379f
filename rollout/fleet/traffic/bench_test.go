package traffic_test

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/canary/canarytest"
)

// BenchmarkSnapshotJSON measures what a Publisher writes for a full
// default window (30 intervals of 10 s) of 200 keyed requests/s at 5%: the
// time to take and encode the snapshot, and its size (bytes/snapshot).
func BenchmarkSnapshotJSON(b *testing.B) {
	m := canary.NewMetrics(canary.MetricsOptions{Weight: 500})
	r := rand.New(rand.NewPCG(1, 2))
	start := canarytest.Epoch
	for i := range 300 * 200 {
		v := canary.Stable
		if r.IntN(20) == 0 {
			v = canary.Canary
		}
		lat := time.Duration(float64(20*time.Millisecond) * (0.5 + r.Float64()))
		m.RecordKeyAt(v, fmt.Sprint("u", r.IntN(10000)), start.Add(time.Duration(i)*5*time.Millisecond), lat, r.IntN(200) == 0)
	}
	at := start.Add(300 * time.Second)
	var n int
	b.ReportAllocs()
	for b.Loop() {
		buf, err := json.Marshal(m.SnapshotAt(at))
		if err != nil {
			b.Fatal(err)
		}
		n = len(buf)
	}
	b.ReportMetric(float64(n), "bytes/snapshot")
}
