package promanalysis

import (
	"fmt"
	"math"
	"time"

	"github.com/batonhq/baton/internal/stats"
	"github.com/batonhq/baton/rollout"
)

// checks runs the tests (or thresholds) of one analysis; a.mu is held.
func (a *Analyzer) checks(r *Report, hs, hc *histogram) []Check {
	o := &a.opts
	st, ca := &r.Stable, &r.Canary
	var out []Check
	if a.q.errorRate != nil {
		out = append(out, relative("error rate", ca.Requests, st.Requests, o.MinRequests,
			ca.ErrorRate, st.ErrorRate+o.ErrorMargin, pct(ca.ErrorRate), pct(st.ErrorRate), pct(o.ErrorMargin)))
	} else {
		out = append(out, a.errorTest(st, ca))
	}
	switch {
	case a.q.latency != nil:
		out = append(out, relative("latency", ca.Requests, st.Requests, o.MinRequests,
			float64(ca.Latency), float64(st.Latency)*(1+o.LatencyMargin), ca.Latency.String(), st.Latency.String(),
			fmt.Sprintf("x%.3g", 1+o.LatencyMargin)))
	case a.q.buckets != nil:
		out = append(out, a.latencyTest(hs, hc, st, ca))
	}
	if o.MaxErrorRate > 0 {
		out = append(out, limit("max error rate", ca.Requests, o.MinRequests, ca.ErrorRate > o.MaxErrorRate,
			fmt.Sprintf("canary error rate %s against a limit of %s", pct(ca.ErrorRate), pct(o.MaxErrorRate))))
	}
	if o.MaxLatency > 0 {
		l, what := ca.P99, "p99 latency"
		if a.q.latency != nil {
			l, what = ca.Latency, "latency"
		}
		out = append(out, limit("max latency", ca.Requests, o.MinRequests, l > o.MaxLatency,
			fmt.Sprintf("canary %s %s against a limit of %s", what, l.Round(10*time.Microsecond), o.MaxLatency)))
	}
	return out
}

// errorTest is the one-sided test of "canary error rate <= stable's +
// ErrorMargin": Fisher's exact conditional test on the counts (rounded
// from increase()) without a margin, a z-test with one. A Pass needs the
// non-inferiority test to rule out PassErrorMargin.
func (a *Analyzer) errorTest(st, ca *Figures) Check {
	o := &a.opts
	c := Check{Name: "error rate", PassP: 1}
	ns, nc := int64(math.Round(st.Requests)), int64(math.Round(ca.Requests))
	xs, xc := min(int64(math.Round(st.Errors)), ns), min(int64(math.Round(ca.Errors)), nc)
	if ns <= 0 || nc <= 0 {
		c.Detail = fmt.Sprintf("error rate: no requests to compare yet (canary %d, stable %d)", nc, ns)
		return c
	}
	rc, rs := float64(xc)/float64(nc), float64(xs)/float64(ns)
	se := math.Sqrt(shrunkVar(xc, nc) + shrunkVar(xs, ns))
	var p, best float64
	test := "exact test"
	if o.ErrorMargin == 0 {
		// best is the p-value of the most extreme split of these
		// errors: when even it could not reject, the look is not spent
		// (thin traffic keeps its budget).
		p, best = stats.ProportionGreaterBest(xc, nc, xs, ns)
	} else {
		test = "z-test"
		p = stats.NormalUpper((rc - rs - o.ErrorMargin) / se)
	}
	if best < a.spending[testErrors].Level(a.looks[testErrors]+1) {
		a.looks[testErrors]++
		c.Look, c.Level, c.P = a.looks[testErrors], a.spending[testErrors].Level(a.looks[testErrors]), p
		if p < c.Level {
			c.Verdict = rollout.Fail
		}
	}
	c.PassP = stats.NormalLower((rc - rs - o.PassErrorMargin) / se)
	if c.Verdict != rollout.Fail && c.PassP < o.PassLevel {
		c.Verdict = rollout.Pass
	}
	c.Detail = fmt.Sprintf("canary error rate %s (%d of %d) vs stable %s (%d of %d), %s; within %s: p=%.2g",
		pct(rc), xc, nc, pct(rs), xs, ns, testText(test, c), pct(o.PassErrorMargin), c.PassP)
	return c
}

// latencyTest is the one-sided z-test of "canary's mean log latency <=
// stable's + log(1+LatencyMargin)" on the bucket distributions: each
// request counts at the log of its bucket's middle, so a relative
// slowdown is a shift of the mean whatever the buckets. A Pass needs the
// non-inferiority test to rule out PassLatencyMargin.
func (a *Analyzer) latencyTest(hs, hc *histogram, st, ca *Figures) Check {
	o := &a.opts
	c := Check{Name: "latency", PassP: 1}
	if hs.total < o.MinRequests || hc.total < o.MinRequests {
		c.Detail = fmt.Sprintf("latency: %.0f canary and %.0f stable requests in the buckets, needs %.0f each", hc.total, hs.total, o.MinRequests)
		return c
	}
	ms, vs := hs.moments()
	mc, vc := hc.moments()
	se := math.Sqrt(vc/hc.total + vs/hs.total)
	if se == 0 {
		se = math.SmallestNonzeroFloat64 // every request in one bucket
	}
	diff := mc - ms
	a.looks[testLatency]++
	c.Look, c.Level = a.looks[testLatency], a.spending[testLatency].Level(a.looks[testLatency])
	c.P = stats.NormalUpper((diff - math.Log2(1+o.LatencyMargin)) / se)
	if c.P < c.Level {
		c.Verdict = rollout.Fail
	}
	c.PassP = stats.NormalLower((diff - math.Log2(1+o.PassLatencyMargin)) / se)
	if c.Verdict != rollout.Fail && c.PassP < o.PassLevel {
		c.Verdict = rollout.Pass
	}
	c.Detail = fmt.Sprintf("canary latency %+.1f%% of stable's (geometric mean; p50 %s vs %s, p99 %s vs %s), tolerated +%.0f%%, %s; within +%.0f%%: p=%.2g",
		100*(math.Exp2(diff)-1), ca.P50.Round(10*time.Microsecond), st.P50.Round(10*time.Microsecond),
		ca.P99.Round(10*time.Microsecond), st.P99.Round(10*time.Microsecond),
		100*o.LatencyMargin, testText("z-test", c), 100*o.PassLatencyMargin, c.PassP)
	return c
}

// relative is a threshold: the canary's value against a bound derived
// from stable's, once both have min requests.
func relative(name string, nc, ns, minN, v, bound float64, cv, sv, margin string) Check {
	c := Check{Name: name, PassP: 1}
	if nc < minN || ns < minN {
		c.Detail = fmt.Sprintf("%s: %.0f canary and %.0f stable requests, needs %.0f each", name, nc, ns, minN)
		return c
	}
	c.Verdict = rollout.Pass
	if v > bound {
		c.Verdict = rollout.Fail
	}
	c.Detail = fmt.Sprintf("canary %s %s vs stable %s (threshold, margin %s)", name, cv, sv, margin)
	return c
}

// limit is an absolute threshold on the canary; it can only fail it.
func limit(name string, n, minN float64, over bool, detail string) Check {
	c := Check{Name: name, PassP: 1, Detail: detail}
	switch {
	case n < minN:
		c.Detail = fmt.Sprintf("%s: canary has %.0f requests, needs %.0f", name, n, minN)
	case over:
		c.Verdict = rollout.Fail
	default:
		c.Verdict = rollout.Pass
	}
	return c
}

func testText(test string, c Check) string {
	if c.Look == 0 {
		return test + " not run (no look spent: too little data to reject)"
	}
	verb := "not below"
	if c.P < c.Level {
		verb = "below"
	}
	return fmt.Sprintf("%s p=%.2g %s level %.2g (look %d)", test, c.P, verb, c.Level, c.Look)
}

// shrunkVar is stats.RateVariance of x of n.
func shrunkVar(x, n int64) float64 { return stats.RateVariance(float64(x), float64(n)) }

func pct(x float64) string {
	if x != 0 && x < 0.01 {
		return fmt.Sprintf("%.2f%%", 100*x)
	}
	return fmt.Sprintf("%.1f%%", 100*x)
}
