package canary

import (
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// record adds n requests per variant over [from, to) with log-normal
// latency (median 20 ms, sigma 0.8) times slow for the canary, keyed by
// one of 1,000 keys when keyed.
func recordSpan(m *Metrics, r *rand.Rand, from time.Time, span time.Duration, n int, slow float64, keyed bool) {
	for i := range n {
		at := from.Add(time.Duration(i) * span / time.Duration(n))
		for _, v := range []Variant{Stable, Canary} {
			scale := 1.0
			if v == Canary {
				scale = slow
			}
			lat := time.Duration(scale * 20e6 * math.Exp(0.8*r.NormFloat64()))
			if keyed {
				m.RecordKeyAt(v, "k"+strconv.Itoa(r.IntN(1000)), at, lat, false)
			} else {
				m.RecordAt(v, at, lat, false)
			}
		}
	}
}

// TestLatencySequentialLevel: looks at one growing window of independent
// requests are tested at the group-sequential boundary, a nominal level
// above the spending increment; with sticky keys, or once the window
// starts elsewhere, each look is tested at its increment alone.
func TestLatencySequentialLevel(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		t0 := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
		m := NewMetrics(MetricsOptions{Weight: 5000})
		a, err := NewAnalyzer(AnalysisOptions{Looks: 10})
		if err != nil {
			t.Fatal(err)
		}
		r := rand.New(rand.NewPCG(1, 2))
		for k := 1; k <= 3; k++ {
			recordSpan(m, r, t0.Add(time.Duration(k-1)*10*time.Second), 10*time.Second, 300, 1, keyed)
			rep := a.AnalyzeWindow(m.currentAt(t0.Add(time.Duration(k) * 10 * time.Second)))
			c := rep.Check("latency")
			inc := a.spending[testLatency].Level(k)
			switch {
			case c.Look != k:
				t.Fatalf("keyed %v: look %d, want %d", keyed, c.Look, k)
			case (k == 1 || keyed) && math.Abs(c.Level-inc) > 1e-15:
				t.Errorf("keyed %v look %d: level %.3g, want the increment %.3g", keyed, k, c.Level, inc)
			case k > 1 && !keyed && !(c.Level > inc*1.05):
				t.Errorf("look %d: level %.3g, want above the increment %.3g", k, c.Level, inc)
			}
		}
	}
}

// TestStepLatencyMargin: a canary 3% slower on 6,000 requests each rules
// out +10% but not +5%: a Pass before a step that is not the last, not
// before 100%.
func TestStepLatencyMargin(t *testing.T) {
	t0 := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	m := NewMetrics(MetricsOptions{Weight: 5000})
	recordSpan(m, rand.New(rand.NewPCG(5, 6)), t0, 50*time.Second, 6000, 1.03, false)
	w := m.currentAt(t0.Add(time.Minute))
	a, err := NewAnalyzer(AnalysisOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r := a.analyze(w, false); r.Verdict != Pass {
		t.Errorf("before an intermediate step: %s (%s)", r.Verdict, r.Reason)
	}
	if r := a.analyze(w, true); r.Verdict != Inconclusive {
		t.Errorf("before 100%%: %s (%s)", r.Verdict, r.Reason)
	}
	if _, err := NewAnalyzer(AnalysisOptions{StepLatencyMargin: -1}); err != nil {
		t.Fatal(err)
	}
}
