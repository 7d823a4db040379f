package canary

import (
	"fmt"
	"math"
	"time"

	"github.com/batonhq/baton/internal/stats"
)

// The three tests of a look. Each is a test of a shifted null hypothesis
// ("the canary is worse than stable by no more than the margin") whose
// rejection fails the canary, and the first two also test the opposite
// shifted null ("worse by at least the pass margin") whose rejection is the
// positive evidence a Pass needs.

func (a *Analyzer) errorCheck(st, ca *Sample) Check {
	o := &a.opts
	c := Check{Name: "error rate", PassP: 1, DesignEffect: 1}
	xs, ns := min(st.Errors, st.Requests), st.Requests
	xc, nc := min(ca.Errors, ca.Requests), ca.Requests
	if nc == 0 || ns == 0 {
		c.Detail = fmt.Sprintf("no requests to compare yet (canary %d, stable %d)", nc, ns)
		return c
	}
	d := designEffect(binarySS(st, st.Errors, func(g Group) uint64 { return g.Errors }),
		binarySS(ca, ca.Errors, func(g Group) uint64 { return g.Errors }))
	c.DesignEffect = d
	sxc, snc, sxs, sns := scaled(xc, d), scaled(nc, d), scaled(xs, d), scaled(ns, d)
	rc, rs := float64(xc)/float64(nc), float64(xs)/float64(ns)
	test := "exact test"
	var p, best float64
	if o.ErrorMargin == 0 {
		// Fisher's conditional test: exact whatever the counts, so it
		// needs no minimum sample. best is the p-value of the most
		// extreme split of these errors; when even that could not
		// reject, the look is not spent.
		p, best = stats.ProportionGreaterBest(sxc, snc, sxs, sns)
	} else {
		test = "z-test"
		se := math.Sqrt(d * (shrunkVar(xc, nc) + shrunkVar(xs, ns)))
		p = stats.NormalUpper((rc - rs - o.ErrorMargin) / se)
	}
	if best < a.nextLevel(testErrors) {
		c.Look, c.Level = a.spend(testErrors)
		c.P = p
		if p < c.Level {
			c.Verdict = Fail
		}
	}
	se := math.Sqrt(d * (shrunkVar(xc, nc) + shrunkVar(xs, ns)))
	c.PassP = stats.NormalLower((rc - rs - o.PassErrorMargin) / se)
	if c.Verdict != Fail && c.PassP < o.PassLevel {
		c.Verdict = Pass
	}
	margin := ""
	if o.ErrorMargin > 0 {
		margin = fmt.Sprintf(" + %s margin", pct(o.ErrorMargin))
	}
	c.Detail = fmt.Sprintf("canary error rate %s (%d of %d) vs stable %s%s (%d of %d), %s; within %s: p=%.2g",
		pct(rc), xc, nc, pct(rs), margin, xs, ns, testText(test, c), pct(o.PassErrorMargin), c.PassP)
	return c
}

func (a *Analyzer) latencyCheck(start time.Time, st, ca *Sample, last bool) Check {
	o := &a.opts
	passMargin := o.PassLatencyMargin
	if !last {
		passMargin = o.StepLatencyMargin
	}
	c := Check{Name: "latency", PassP: 1, DesignEffect: 1}
	if st.Requests < o.MinSamples || ca.Requests < o.MinSamples {
		c.Detail = "latency: " + needPair(st, ca, o.MinSamples)
		return c
	}
	ms, vs := scoreMoments(st)
	mc, vc := scoreMoments(ca)
	d := designEffect(scoreSS(st), scoreSS(ca))
	c.DesignEffect = d
	se := math.Sqrt(d * (vc/float64(ca.Requests) + vs/float64(st.Requests)))
	if se == 0 {
		se = math.SmallestNonzeroFloat64 // every request in one bucket
	}
	diff := mc - ms
	c.Look, c.Level = a.spend(testLatency)
	c.Level = a.sequentialLevel(start, st, ca, se, c.Level)
	c.P = stats.NormalUpper((diff - scoreShift(o.LatencyMargin)) / se)
	if c.P < c.Level {
		c.Verdict = Fail
	}
	c.PassP = stats.NormalLower((diff - scoreShift(passMargin)) / se)
	if c.Verdict != Fail && c.PassP < o.PassLevel {
		c.Verdict = Pass
	}
	c.Detail = fmt.Sprintf("canary latency %s of stable's (geometric mean; median %s vs %s), tolerated %s, %s; within %s: p=%.2g",
		change(diff), round(ca.Latency.Quantile(0.5)), round(st.Latency.Quantile(0.5)),
		fmt.Sprintf("+%.0f%%", 100*o.LatencyMargin), testText("z-test", c), fmt.Sprintf("+%.0f%%", 100*passMargin), c.PassP)
	return c
}

// sequentialLevel returns the nominal level of a latency look that
// spends alpha: the group-sequential boundary of the looks at windows
// whose data starts at start, whose sample only grows while the weight
// holds and the window has not slid past it, so that the looks' z-statistics have the joint
// law of a Brownian motion in the information 1/se². That holds for
// independent requests; requests of a sticky key stay alike from one look
// to the next, which the information does not capture, so with keys (and
// at a look whose information did not grow) the look is tested alone at
// alpha, the union bound.
func (a *Analyzer) sequentialLevel(start time.Time, st, ca *Sample, se, alpha float64) float64 {
	if !start.Equal(a.pathStart) {
		a.path, a.pathStart = stats.Sequential{}, start
	}
	if keyed(st) || keyed(ca) {
		return alpha
	}
	b, ok := a.path.Next(1/(se*se), alpha)
	if !ok {
		return alpha
	}
	return stats.NormalUpper(b)
}

func keyed(s *Sample) bool {
	for _, g := range s.Groups {
		if g.Requests > 0 {
			return true
		}
	}
	return false
}

func (a *Analyzer) tailCheck(st, ca *Sample) Check {
	o := &a.opts
	c := Check{Name: "latency tail", PassP: 1, DesignEffect: 1}
	xs, ns := min(st.Over, st.Requests), st.Requests
	xc, nc := min(ca.Over, ca.Requests), ca.Requests
	if nc == 0 || ns == 0 || xc+xs == 0 {
		c.Detail = "latency tail: no request above the tail cut yet"
		return c
	}
	d := designEffect(binarySS(st, st.Over, func(g Group) uint64 { return g.Over }),
		binarySS(ca, ca.Over, func(g Group) uint64 { return g.Over }))
	c.DesignEffect = d
	sxc, snc, sxs, sns := scaled(xc, d), scaled(nc, d), scaled(xs, d), scaled(ns, d)
	// Given the requests above the cut in both variants, the canary's
	// share is binomial under the null that its rate is (1+TailMargin)
	// times stable's (exact for rare exceedances, conservative else).
	r := 1 + o.TailMargin
	share := r * float64(snc) / (r*float64(snc) + float64(sns))
	x := sxc + sxs
	if x > 0 && stats.BinomialGreater(x, x, share) < a.nextLevel(testTail) {
		c.Look, c.Level = a.spend(testTail)
		c.P = stats.BinomialGreater(sxc, x, share)
		c.Verdict = Pass // the tail test only ever fails a canary
		if c.P < c.Level {
			c.Verdict = Fail
		}
	}
	c.Detail = fmt.Sprintf("canary p99 latency %s vs stable %s, %s vs %s of requests above the tail cut (tolerated x%.2g), %s",
		round(ca.Latency.Quantile(0.99)), round(st.Latency.Quantile(0.99)),
		pct(ratio(xc, nc)), pct(ratio(xs, ns)), r, testText("exact test", c))
	return c
}

// testText reports the failure test of c: its p-value against its level,
// or that it did not run (no look spent) because the data could not yet
// reject.
func testText(test string, c Check) string {
	if c.Look == 0 {
		return test + " not run (no look spent: too little data to reject)"
	}
	return fmt.Sprintf("%s p=%.2g %s level %.2g", test, c.P, cmp(c.P, c.Level), c.Level)
}

// shrunkVar is stats.RateVariance of x of n.
func shrunkVar(x, n uint64) float64 { return stats.RateVariance(float64(x), float64(n)) }

// scaled divides a count by the design effect (Rao and Scott's correction
// of clustered counts), so that exact tests see the effective sample.
func scaled(x uint64, d float64) int64 {
	if d == 1 {
		return int64(x)
	}
	return int64(math.Round(float64(x) / d))
}

// The latency score is the bucket index: 16 per doubling of the latency
// above 16 µs, a log scale in which a relative slowdown is a shift.
func scoreShift(margin float64) float64 { return subCount * math.Log2(1+margin) }

func change(scoreDiff float64) string {
	return fmt.Sprintf("%+.1f%%", 100*(math.Exp2(scoreDiff/subCount)-1))
}

func scoreMoments(s *Sample) (mean, variance float64) {
	sum, sq := s.Latency.moments()
	n := float64(s.Requests)
	mean = sum / n
	return mean, max(sq/n-mean*mean, 0)
}

// ss holds, for one variant and one outcome, the sum of squared residuals
// around the variant's mean taken two ways: cluster, with each key group's
// requests as one unit (requests without a key as units of their own), and
// naive, with every request as a unit. Their ratio is the design effect.
type ss struct {
	cluster, naive float64
	units          int // units in cluster: key groups and unkeyed requests
	keyed          int // key groups with requests
}

func binarySS(s *Sample, events uint64, of func(Group) uint64) ss {
	n := float64(s.Requests)
	e := float64(min(events, s.Requests))
	p := e / n
	out := ss{naive: e*(1-p)*(1-p) + (n-e)*p*p}
	n0, e0 := n, e
	for _, g := range s.Groups {
		if g.Requests == 0 {
			continue
		}
		gn, ge := float64(g.Requests), float64(of(g))
		r := ge - p*gn
		out.cluster += r * r
		n0, e0 = n0-gn, e0-ge
		out.units++
		out.keyed++
	}
	n0, e0 = max(n0, 0), max(e0, 0)
	out.cluster += e0*(1-p)*(1-p) + (n0-e0)*p*p
	out.units += int(n0)
	return out
}

func scoreSS(s *Sample) ss {
	sum, sq := s.Latency.moments()
	n := float64(s.Requests)
	mu := sum / n
	out := ss{naive: max(sq-n*mu*mu, 0)}
	n0, s0 := n, sum
	for _, g := range s.Groups {
		if g.Requests == 0 {
			continue
		}
		gn, gs := float64(g.Requests), float64(g.Score)
		r := gs - mu*gn
		out.cluster += r * r
		n0, s0 = n0-gn, s0-gs
		out.units++
		out.keyed++
	}
	n0 = max(n0, 0)
	out.cluster += max(float64(s.UnkeyedSquares)-2*mu*s0+mu*mu*n0, 0)
	out.units += int(n0)
	return out
}

// designEffect is the variance inflation due to sticky keys: the ratio of
// the cluster-robust to the naive sum of squares, pooled over both variants
// (dominated by stable's many keys, hence stable) and the canary's own
// (which catches a canary whose few keys are unlike stable's), whichever is
// larger, and never below 1. Without keys it is exactly 1.
func designEffect(st, ca ss) float64 {
	d := 1.0
	if st.keyed+ca.keyed == 0 {
		return d
	}
	if n := st.naive + ca.naive; n > 0 {
		d = max(d, crFactor(st.units+ca.units)*(st.cluster+ca.cluster)/n)
	}
	if ca.naive > 0 {
		d = max(d, crFactor(ca.units)*ca.cluster/ca.naive)
	}
	return d
}

// crFactor is the small-sample correction k/(k-1) of a cluster-robust
// variance over k units.
func crFactor(k int) float64 {
	if k < 2 {
		return 1
	}
	return float64(k) / float64(k-1)
}
