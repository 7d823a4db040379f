package traffic_test

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/canary/canarytest"
	"github.com/batonhq/baton/rollout/fleet/traffic"
)

// fleetSim is a canary at weight on a fleet of hosts, on a simulated
// clock: Poisson arrivals at rps spread evenly over the hosts, each
// request to the canary with probability weight/10,000, failing at its
// variant's rate, with the same log-normal latency on both variants. Every
// 10 s the fleet's snapshots are merged (traffic.Merge) and judged by one
// analyzer, and host 0's alone by another, as a driver that used only its
// own host's data would.
type fleetSim struct {
	seed                 uint64
	hosts                int
	rps                  float64
	weight               uint32
	stableErr, canaryErr float64
	horizon              time.Duration
}

// run returns when each analysis first failed the canary (0: never).
func (s fleetSim) run(t *testing.T) (fleetAt, aloneAt time.Duration) {
	const every = 10 * time.Second
	looks := int(s.horizon / every)
	newAnalyzer := func() *canary.Analyzer {
		a, err := canary.NewAnalyzer(canary.AnalysisOptions{Looks: looks})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	fleetA, aloneA := newAnalyzer(), newAnalyzer()
	ms := make([]*canary.Metrics, s.hosts)
	for i := range ms {
		ms[i] = canary.NewMetrics(canary.MetricsOptions{Weight: s.weight})
	}
	r := rand.New(rand.NewPCG(s.seed, 0xf1ee7))
	start := canarytest.Epoch
	at := 0.0 // seconds since start
	for look := 1; look <= looks && (fleetAt == 0 || aloneAt == 0); look++ {
		end := float64(look) * every.Seconds()
		for {
			at += r.ExpFloat64() / s.rps
			if at >= end {
				break
			}
			v, rate := canary.Stable, s.stableErr
			if r.Float64()*canary.MaxWeight < float64(s.weight) {
				v, rate = canary.Canary, s.canaryErr
			}
			lat := time.Duration(float64(20*time.Millisecond) * math.Exp(0.5*r.NormFloat64()))
			ms[r.IntN(s.hosts)].RecordAt(v, start.Add(time.Duration(at*float64(time.Second))), lat, r.Float64() < rate)
		}
		now := start.Add(time.Duration(end * float64(time.Second)))
		snaps := map[string]*canary.Snapshot{}
		for i, m := range ms {
			snaps[string(rune('a'+i))] = m.SnapshotAt(now)
		}
		merged, hosts, left := traffic.Merge(snaps, now, time.Minute)
		if len(hosts) != s.hosts {
			t.Fatalf("merged %v, left out %v", hosts, left)
		}
		elapsed := time.Duration(look) * every
		if fleetAt == 0 && fleetA.Analyze(merged).Verdict == canary.Fail {
			fleetAt = elapsed
		}
		if aloneAt == 0 && aloneA.Analyze(snaps["a"]).Verdict == canary.Fail {
			aloneAt = elapsed
		}
	}
	return fleetAt, aloneAt
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestSimFleetRollsBackSooner: a canary failing 2% of its requests
// (stable 0.5%) at 5% of 200 requests/s spread over 3 hosts is rolled back
// in every trial on the fleet's merged data, sooner (median) than on one
// host's data alone.
func TestSimFleetRollsBackSooner(t *testing.T) {
	trials := 12
	if raceEnabled {
		trials = 4
	}
	horizon := 15 * time.Minute
	var fleetTimes, aloneTimes []time.Duration
	aloneMissed := 0
	for i := range trials {
		f, a := fleetSim{seed: uint64(i + 1), hosts: 3, rps: 200, weight: 500, stableErr: 0.005, canaryErr: 0.02, horizon: horizon}.run(t)
		if f == 0 {
			t.Fatalf("trial %d: the fleet-wide analysis did not roll the canary back within %s", i, horizon)
		}
		fleetTimes = append(fleetTimes, f)
		if a == 0 {
			aloneMissed++
			a = horizon
		}
		aloneTimes = append(aloneTimes, a)
	}
	fm, am := median(fleetTimes), median(aloneTimes)
	t.Logf("time to rollback over %d trials: fleet of 3 hosts median %s (max %s); one host alone median %s (%d not rolled back within %s)",
		trials, fm, slices.Max(fleetTimes), am, aloneMissed, horizon)
	if fm >= am {
		t.Fatalf("the fleet's median time to rollback %s is not below one host's %s", fm, am)
	}
}

// TestSimFleetAA: with both variants alike (A/A), the fleet-wide analysis
// of 3 hosts rolls back no more often than the analysis's budget (Alpha,
// 1%) allows one host: the count of false rollbacks stays below a bound
// that a 1% rate exceeds with probability under 0.5%.
func TestSimFleetAA(t *testing.T) {
	trials, bound := 100, 4 // P(X > 4 | n=100, p=0.01) = 0.0034
	if raceEnabled {
		trials, bound = 10, 1 // P(X > 1 | n=10, p=0.01) = 0.0043
	}
	fleetFalse, aloneFalse := 0, 0
	for i := range trials {
		f, a := fleetSim{seed: uint64(1000 + i), hosts: 3, rps: 200, weight: 500, stableErr: 0.005, canaryErr: 0.005, horizon: 10 * time.Minute}.run(t)
		if f != 0 {
			fleetFalse++
		}
		if a != 0 {
			aloneFalse++
		}
	}
	t.Logf("A/A over %d trials of 10 minutes: %d false rollbacks on the fleet's data, %d on one host's", trials, fleetFalse, aloneFalse)
	if fleetFalse > bound {
		t.Fatalf("%d false rollbacks of %d on the fleet's data: above the bound %d of a 1%% rate", fleetFalse, trials, bound)
	}
}
