package canary_test

import (
	"context"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/canary/canarytest"
)

// sim describes one simulated rollout: requests arrive evenly at RPS, are
// split at random by the splitter's weight, and their outcome is drawn from
// the variant's error rate and a log-normal latency (heavy right tail).
type sim struct {
	seed       uint64
	rps        int
	stableErr  float64
	canaryErr  float64 // once bad
	slowdown   float64 // canary latency multiplier once bad; 0 means 1
	badFrom    time.Duration
	goodErr    float64 // canary error rate before badFrom
	horizon    time.Duration
	steps      []canary.Step
	analysis   canary.AnalysisOptions
	noTraffic  bool
	checkEvery time.Duration
}

type simResult struct {
	status    canary.Status
	abortedAt time.Duration // 0 if not aborted
	events    []canary.Event
}

// Latency model: median 20 ms, sigma 0.8 (p99 about 129 ms).
const (
	simMedian = 20 * time.Millisecond
	simSigma  = 0.8
)

var nopHandler = http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})

func defaultSteps() []canary.Step {
	return []canary.Step{
		{Weight: 500, MinDuration: time.Minute},
		{Weight: 2500, MinDuration: time.Minute},
		{Weight: 5000, MinDuration: time.Minute},
	}
}

func (c sim) run(t testing.TB) simResult {
	t.Helper()
	clock := canarytest.NewClock(canarytest.Epoch)
	sp, err := canary.New(canary.Options{
		Stable: nopHandler, Canary: nopHandler,
		Window: time.Minute, Resolution: 5 * time.Second, Clock: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	var res simResult
	steps := c.steps
	if steps == nil {
		steps = defaultSteps()
	}
	every := c.checkEvery
	if every == 0 {
		every = 10 * time.Second
	}
	ctl, err := canary.NewController(canary.ControllerOptions{
		Splitter: sp, Steps: steps, Analysis: c.analysis, Interval: every, Clock: clock,
		OnEvent: func(e canary.Event) { res.events = append(res.events, e) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(c.seed, 0x5eed))
	m := sp.Metrics()
	start := clock.Now()
	step := time.Second / time.Duration(max(c.rps, 1))
	mu := math.Log(float64(simMedian))
	ctx := context.Background()
	for elapsed := time.Duration(0); elapsed < c.horizon; {
		// One check interval of traffic, then a check.
		end := elapsed + every
		for ; !c.noTraffic && elapsed < end; elapsed += step {
			at := start.Add(elapsed)
			v := canary.Stable
			if r.Uint32N(canary.MaxWeight) < sp.Weight() {
				v = canary.Canary
			}
			errRate, scale := c.stableErr, 1.0
			if v == canary.Canary {
				errRate = c.goodErr
				if elapsed >= c.badFrom {
					errRate = c.canaryErr
					if c.slowdown != 0 {
						scale = c.slowdown
					}
				}
			}
			lat := time.Duration(scale * math.Exp(mu+simSigma*r.NormFloat64()))
			m.RecordAt(v, at, lat, r.Float64() < errRate)
		}
		elapsed = end
		clock.Set(start.Add(elapsed))
		if _, err := ctl.Evaluate(ctx); err != nil {
			break
		}
		if st := ctl.Status(); st.State.Finished() {
			if st.State == canary.Aborted {
				res.abortedAt = elapsed
			}
			break
		}
	}
	res.status = ctl.Status()
	return res
}

func TestSimErrorRegressionRolledBack(t *testing.T) {
	var worst, sum time.Duration
	const seeds = 20
	for seed := uint64(1); seed <= seeds; seed++ {
		c := sim{seed: seed, rps: 200, stableErr: 0.001, goodErr: 0.001, canaryErr: 0.02,
			badFrom: 30 * time.Second, horizon: 4 * time.Minute}
		res := c.run(t)
		if res.status.State != canary.Aborted {
			t.Fatalf("seed %d: canary at 2%% errors not rolled back: %s (%s)", seed, res.status.State, res.status.Reason)
		}
		if d := res.abortedAt - c.badFrom; d > time.Minute {
			t.Fatalf("seed %d: rolled back %s after the regression, want within 60s", seed, d)
		}
		if res.status.Weight != 0 {
			t.Fatalf("seed %d: weight %d after abort", seed, res.status.Weight)
		}
		worst, sum = max(worst, res.abortedAt-c.badFrom), sum+res.abortedAt-c.badFrom
		if seed == 1 {
			t.Logf("rolled back %s after the regression: %s", res.abortedAt-c.badFrom, res.status.Reason)
		}
	}
	t.Logf("%d seeds: rolled back %s after the regression on average, %s at worst", seeds, sum/seeds, worst)
}

func TestSimErrorRegressionFromStart(t *testing.T) {
	c := sim{seed: 7, rps: 200, stableErr: 0.001, goodErr: 0.02, canaryErr: 0.02, horizon: 4 * time.Minute}
	res := c.run(t)
	if res.status.State != canary.Aborted || res.abortedAt > time.Minute {
		t.Fatalf("bad canary from the start: %s at %s (%s)", res.status.State, res.abortedAt, res.status.Reason)
	}
}

func TestSimLatencyRegressionRolledBack(t *testing.T) {
	var worst, sum time.Duration
	const seeds = 20
	for seed := uint64(1); seed <= seeds; seed++ {
		c := sim{seed: seed, rps: 200, stableErr: 0.001, goodErr: 0.001, canaryErr: 0.001, slowdown: 1.5,
			badFrom: 30 * time.Second, horizon: 4 * time.Minute}
		res := c.run(t)
		if res.status.State != canary.Aborted {
			t.Fatalf("seed %d: canary with +50%% latency not rolled back: %s (%s)", seed, res.status.State, res.status.Reason)
		}
		if d := res.abortedAt - c.badFrom; d > time.Minute {
			t.Fatalf("seed %d: rolled back %s after the regression, want within 60s", seed, d)
		}
		worst, sum = max(worst, res.abortedAt-c.badFrom), sum+res.abortedAt-c.badFrom
		if seed == 1 {
			t.Logf("rolled back %s after the regression: %s", res.abortedAt-c.badFrom, res.status.Reason)
		}
	}
	t.Logf("%d seeds: rolled back %s after the regression on average, %s at worst", seeds, sum/seeds, worst)
}

// TestSimAA runs canaries identical to stable (heavy-tailed latency, 0.1%
// errors) through a three-step rollout of 18 planned checks and counts
// rollbacks: alpha spending bounds them by DefaultAlpha = 1%.
func TestSimAA(t *testing.T) {
	runs := 1000
	if testing.Short() || raceEnabled {
		runs = 100
	}
	// BATON_AA_RUNS overrides the count, to measure the rate precisely.
	if n, err := strconv.Atoi(os.Getenv("BATON_AA_RUNS")); err == nil && n > 0 {
		runs = n
	}
	var aborted, promoted atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var reasons []string
	workers := 2
	for w := range workers {
		wg.Go(func() {
			for i := w; i < runs; i += workers {
				c := sim{seed: uint64(1000 + i), rps: 200, stableErr: 0.001, goodErr: 0.001, canaryErr: 0.001,
					horizon: 4 * time.Minute}
				res := c.run(t)
				switch res.status.State {
				case canary.Aborted:
					aborted.Add(1)
					mu.Lock()
					reasons = append(reasons, res.status.Reason)
					mu.Unlock()
				case canary.Promoted:
					promoted.Add(1)
				}
			}
		})
	}
	wg.Wait()
	rate := float64(aborted.Load()) / float64(runs)
	t.Logf("A/A: %d of %d runs rolled back (%.2f%%), %d promoted", aborted.Load(), runs, 100*rate, promoted.Load())
	for _, r := range reasons {
		t.Logf("false rollback: %s", r)
	}
	if rate > 0.01 {
		t.Errorf("A/A false rollback rate %.2f%% is above 1%%", 100*rate)
	}
	// A healthy canary must also get through: a test that never promotes
	// would pass the bound above trivially.
	if p := float64(promoted.Load()) / float64(runs); p < 0.95 {
		t.Errorf("only %.1f%% of healthy canaries were promoted", 100*p)
	}
}

func TestSimNoTraffic(t *testing.T) {
	c := sim{seed: 1, noTraffic: true, horizon: 10 * time.Minute}
	res := c.run(t)
	st := res.status
	if st.State != canary.Progressing || st.Step != 0 || st.Weight != 500 {
		t.Fatalf("no traffic: state %s step %d weight %d, want progressing at step 0, 5%%", st.State, st.Step, st.Weight)
	}
	if st.Last.Verdict != canary.Insufficient {
		t.Fatalf("no traffic: verdict %s", st.Last.Verdict)
	}
	if want := "insufficient data: canary has 0 requests in the window, needs 100"; st.Last.Reason != want {
		t.Fatalf("reason %q, want %q", st.Last.Reason, want)
	}
	if st.Last.Look != 0 {
		t.Fatalf("no traffic spent look %d of the alpha budget", st.Last.Look)
	}
	for _, e := range res.events {
		if e.Kind == canary.EventAborted {
			t.Fatalf("aborted without traffic: %+v", e)
		}
	}
}
