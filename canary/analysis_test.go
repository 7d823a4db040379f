package canary_test

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/canary/canarytest"
)

// window fills a metrics window: n requests per variant, latencies drawn by
// the given functions.
func window(t *testing.T, n int, stable, cnry func(*rand.Rand) time.Duration) *canary.Snapshot {
	t.Helper()
	clock := canarytest.NewClock(canarytest.Epoch)
	m := canary.NewMetrics(canary.MetricsOptions{Window: time.Minute, Resolution: 10 * time.Second, Clock: clock})
	r := rand.New(rand.NewPCG(42, 42))
	for i := range n {
		at := canarytest.Epoch.Add(time.Duration(i) * 50 * time.Second / time.Duration(n))
		m.RecordAt(canary.Stable, at, stable(r), false)
		m.RecordAt(canary.Canary, at, cnry(r), false)
	}
	clock.Advance(50 * time.Second)
	return m.Snapshot()
}

func logNormal(scale float64) func(*rand.Rand) time.Duration {
	return func(r *rand.Rand) time.Duration {
		return time.Duration(scale * float64(20*time.Millisecond) * math.Exp(0.5*r.NormFloat64()))
	}
}

func checkNamed(r canary.Report, name string) canary.Check { return r.Check(name) }

// TestTailRegression: same median, but 2% of canary requests take 10x
// longer. The typical latency barely moves (+5%, inside the margin); the
// tail check catches it.
func TestTailRegression(t *testing.T) {
	base := logNormal(1)
	slowTail := func(r *rand.Rand) time.Duration {
		d := base(r)
		if r.IntN(50) == 0 {
			d *= 10
		}
		return d
	}
	a, err := canary.NewAnalyzer(canary.AnalysisOptions{Looks: 10})
	if err != nil {
		t.Fatal(err)
	}
	rep := a.Analyze(window(t, 3000, base, slowTail))
	if rep.Verdict != canary.Fail || checkNamed(rep, "latency tail").Verdict != canary.Fail {
		t.Fatalf("tail regression: %s: %s", rep.Verdict, rep.Reason)
	}
	if c := checkNamed(rep, "latency"); c.Verdict == canary.Fail {
		t.Fatalf("latency check failed a canary inside its margin: %+v", c)
	}
	if c := checkNamed(rep, "latency tail"); c.Look != 1 || c.Level <= 0 || !strings.Contains(rep.Reason, "canary p99 latency") {
		t.Fatalf("report %+v", rep)
	}
}

// TestLatencyMargin: a 3% slowdown is significant with enough traffic but
// under the default 5% margin, so it passes; with no margin it fails.
func TestLatencyMargin(t *testing.T) {
	w := window(t, 40000, logNormal(1), logNormal(1.03))
	a, _ := canary.NewAnalyzer(canary.AnalysisOptions{Looks: 1})
	if rep := a.Analyze(w); rep.Verdict != canary.Pass {
		t.Fatalf("3%% slower under a 5%% margin: %s: %s", rep.Verdict, rep.Reason)
	}
	strict, _ := canary.NewAnalyzer(canary.AnalysisOptions{Looks: 1, LatencyMargin: -1})
	rep := strict.Analyze(w)
	if c := checkNamed(rep, "latency"); c.Verdict != canary.Fail {
		t.Fatalf("3%% slower with no margin: %+v", c)
	}
}

func TestAnalyzerLooks(t *testing.T) {
	a, _ := canary.NewAnalyzer(canary.AnalysisOptions{Looks: 4, Spending: canary.OBrienFleming})
	w := window(t, 500, logNormal(1), logNormal(1))
	var levels []float64
	for range 6 {
		rep := a.Analyze(w)
		levels = append(levels, rep.Check("latency").Level)
	}
	if a.Looks() != 6 {
		t.Fatalf("looks %d", a.Looks())
	}
	// O'Brien-Fleming: rising over the plan, then the small reserve.
	if !(levels[0] < levels[1] && levels[1] < levels[2] && levels[2] < levels[3] && levels[4] < levels[3]) {
		t.Fatalf("levels %v", levels)
	}
	a.Reset()
	if rep := a.Analyze(w); rep.Check("latency").Look != 1 {
		t.Fatalf("after Reset: look %d", rep.Check("latency").Look)
	}
	empty := window(t, 0, logNormal(1), logNormal(1))
	if rep := a.Analyze(empty); rep.Verdict != canary.Inconclusive || a.Looks() != 1 {
		t.Fatalf("empty window spent a look: %+v", rep)
	}
	for _, bad := range []canary.AnalysisOptions{{Alpha: 1}, {Alpha: -0.1}, {PassLevel: 1}, {Looks: -1}, {MaxErrorRate: 2},
		{ErrorMargin: -0.1}, {PassErrorMargin: 1.5}, {PassLatencyMargin: -1}} {
		if _, err := canary.NewAnalyzer(bad); !errors.Is(err, canary.ErrInvalidOptions) {
			t.Errorf("%+v: %v", bad, err)
		}
	}
}

func TestReportAlone(t *testing.T) {
	limit := func(name string, v canary.Verdict, detail string) canary.Check {
		return canary.Check{Name: name, Verdict: v, Detail: detail}
	}
	latency := limit("latency", canary.Inconclusive, "no stable traffic")
	cases := []struct {
		name string
		rep  canary.Report
		want canary.Verdict
		in   string
	}{
		{"every limit passes", canary.Report{Checks: []canary.Check{latency, limit("max error rate", canary.Pass, "0.1% <= 1%"), limit("max p99", canary.Pass, "20ms <= 1s")}},
			canary.Pass, "judged by its absolute limits: 0.1% <= 1%; 20ms <= 1s"},
		{"a limit is exceeded", canary.Report{Checks: []canary.Check{limit("max error rate", canary.Pass, "ok"), limit("max p99", canary.Fail, "3s > 1s")}},
			canary.Fail, "canary at 100%: 3s > 1s"},
		{"a limit undecided", canary.Report{Checks: []canary.Check{limit("max error rate", canary.Inconclusive, "12 requests")}},
			canary.Inconclusive, "12 requests"},
		{"no limit set", canary.Report{Checks: []canary.Check{latency}},
			canary.Inconclusive, "no absolute limit"},
		{"the report failed", canary.Report{Verdict: canary.Fail, Reason: "error rate 9%", Checks: []canary.Check{latency}},
			canary.Fail, "error rate 9%"},
	}
	for _, c := range cases {
		v, reason := c.rep.Alone()
		if v != c.want || !strings.Contains(reason, c.in) {
			t.Errorf("%s: %v %q, want %v with %q", c.name, v, reason, c.want, c.in)
		}
	}
}
