package canary

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/internal/stats"
)

// Verdict is the outcome of an analysis. The zero value is Insufficient:
// without enough traffic nothing is concluded, and nothing is rolled back.
type Verdict uint8

const (
	// Insufficient means too little traffic to compare the variants.
	Insufficient Verdict = iota
	// Pass means every check ran and none found the canary worse.
	Pass
	// Fail means at least one check found the canary worse.
	Fail
)

// String returns "insufficient data", "pass" or "fail".
func (v Verdict) String() string {
	switch v {
	case Insufficient:
		return "insufficient data"
	case Pass:
		return "pass"
	case Fail:
		return "fail"
	}
	return fmt.Sprintf("Verdict(%d)", uint8(v))
}

// SpendingShape is the form of the alpha-spending function; the zero value
// is Pocock.
type SpendingShape = stats.Shape

// Spending shapes for AnalysisOptions.Spending.
const (
	// Pocock spends the false-rollback budget nearly evenly over the
	// planned checks: early checks can already catch a bad canary.
	Pocock = stats.Pocock
	// OBrienFleming keeps nearly all of the budget for the last checks:
	// more power at the end, little early.
	OBrienFleming = stats.OBrienFleming
)

// Defaults for AnalysisOptions.
const (
	// DefaultAlpha bounds the probability that a canary identical to
	// stable is rolled back at any check of one rollout.
	DefaultAlpha = 0.01
	// DefaultLooks is the planned number of checks when neither the
	// options nor a Controller's steps say otherwise.
	DefaultLooks = 30
	// DefaultMinSamples is the number of requests each variant needs in
	// the window before any comparison is made.
	DefaultMinSamples = 100
	// DefaultTailQuantile is the latency quantile whose exceedances the
	// tail check compares.
	DefaultTailQuantile = 0.99
	// DefaultLatencyMargin is the relative latency increase below which
	// a significant difference is not called a regression: 5%.
	DefaultLatencyMargin = 0.05
)

// AnalysisOptions configures an Analyzer. Zero fields mean the defaults.
//
// Each check (a "look") compares canary and stable over the same window
// with up to three tests: error rate (one-sided exact two-proportion test),
// latency shift (one-sided Mann-Whitney U on the histograms) and latency
// tail (one-sided exact test on the share of requests above the pooled
// TailQuantile). Look k gets significance level Spending(k) split evenly
// over the enabled tests; levels over all looks sum to at most Alpha, so a
// canary no worse than stable is rolled back with probability at most
// Alpha over the whole rollout, however many checks it takes (union
// bound; see the package documentation for measured figures).
type AnalysisOptions struct {
	// Alpha is the false-rollback budget of one rollout; zero means
	// DefaultAlpha.
	Alpha float64
	// Looks is the planned number of checks; zero means DefaultLooks, or
	// for a Controller the number its steps imply. Checks past the plan
	// are still made, with a reserve of the budget.
	Looks int
	// Spending shapes how the budget is spread over the looks; the zero
	// value is Pocock.
	Spending SpendingShape
	// MinSamples is the number of requests each variant needs in the
	// window before it is compared; zero means DefaultMinSamples.
	MinSamples uint64
	// ErrorMargin is an absolute error-rate increase tolerated before a
	// significant difference is called a regression (0.001 = 0.1 point);
	// zero means none.
	ErrorMargin float64
	// LatencyMargin is a relative latency increase tolerated before a
	// significant difference is called a regression (the canary's median,
	// or p99 for the tail test, must also be this much above stable's);
	// zero means DefaultLatencyMargin, negative means none (significance
	// alone decides).
	LatencyMargin float64
	// TailQuantile is the quantile of the tail check; zero means
	// DefaultTailQuantile.
	TailQuantile float64
	// SkipLatency disables both latency tests (the error test gets the
	// whole level of each look).
	SkipLatency bool
	// MaxErrorRate fails the canary when its error rate in the window is
	// above it (0.02 = 2%), once it has MinSamples requests, whatever
	// stable does; zero means no limit.
	MaxErrorRate float64
	// MaxP99 fails the canary when its p99 latency in the window is
	// above it, once it has MinSamples requests; zero means no limit.
	MaxP99 time.Duration
}

// Figures summarise one variant over a window. The zero value means no
// traffic.
type Figures struct {
	Requests  uint64
	Errors    uint64
	ErrorRate float64
	P50, P99  time.Duration
}

func figuresOf(s *Sample) Figures {
	return Figures{
		Requests:  s.Requests,
		Errors:    s.Errors,
		ErrorRate: s.ErrorRate(),
		P50:       s.Latency.Quantile(0.5),
		P99:       s.Latency.Quantile(0.99),
	}
}

// Check is one test within a Report. The zero value is a check that did not
// run.
type Check struct {
	Name    string  // "error rate", "latency", "latency tail", "max error rate", "max p99"
	Verdict Verdict // Insufficient when it could not run
	P       float64 // p-value (0 for absolute limits)
	Level   float64 // significance level it was held to (0 for absolute limits)
	Detail  string  // the figures behind it, in words
}

// Report is the result of one analysis. The zero value is an Insufficient
// verdict from no data.
type Report struct {
	Verdict Verdict
	// Reason explains the verdict in one sentence a person understands.
	Reason string
	At     time.Time
	// Window is the span compared.
	WindowStart, WindowEnd time.Time
	// Look is the number of this check in the alpha-spending sequence;
	// zero when no statistical test ran (no budget was spent).
	Look int
	// Level is the significance level of each test at this look.
	Level          float64
	Stable, Canary Figures
	Checks         []Check
}

// Analyzer compares canary with stable and keeps the count of looks that
// drives alpha spending. Use NewAnalyzer; the zero value is not usable. It
// is safe for concurrent use (analyses are serialised).
type Analyzer struct {
	opts     AnalysisOptions
	spending stats.Spending
	mu       sync.Mutex
	looks    int
}

// NewAnalyzer returns an analyzer at look 0.
func NewAnalyzer(o AnalysisOptions) (*Analyzer, error) {
	if o.Alpha < 0 || o.Alpha >= 1 {
		return nil, optErr("Alpha", "must be in (0, 1), got %v", o.Alpha)
	}
	if o.TailQuantile < 0 || o.TailQuantile >= 1 {
		return nil, optErr("TailQuantile", "must be in (0, 1), got %v", o.TailQuantile)
	}
	if o.Looks < 0 {
		return nil, optErr("Looks", "must not be negative, got %d", o.Looks)
	}
	if o.MaxErrorRate < 0 || o.MaxErrorRate > 1 {
		return nil, optErr("MaxErrorRate", "must be in [0, 1], got %v", o.MaxErrorRate)
	}
	if o.Alpha == 0 {
		o.Alpha = DefaultAlpha
	}
	if o.Looks == 0 {
		o.Looks = DefaultLooks
	}
	if o.MinSamples == 0 {
		o.MinSamples = DefaultMinSamples
	}
	if o.LatencyMargin == 0 {
		o.LatencyMargin = DefaultLatencyMargin
	}
	o.LatencyMargin = max(o.LatencyMargin, 0)
	if o.TailQuantile == 0 {
		o.TailQuantile = DefaultTailQuantile
	}
	return &Analyzer{opts: o, spending: stats.Spending{Alpha: o.Alpha, Looks: o.Looks, Shape: o.Spending}}, nil
}

// Looks returns how many looks have spent budget so far.
func (a *Analyzer) Looks() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.looks
}

// Reset starts a new alpha-spending sequence (a new rollout).
func (a *Analyzer) Reset() {
	a.mu.Lock()
	a.looks = 0
	a.mu.Unlock()
}

// Analyze compares the canary with stable over w. A look is spent only
// when at least one statistical test can run.
func (a *Analyzer) Analyze(w *Window) Report {
	a.mu.Lock()
	defer a.mu.Unlock()
	o := &a.opts
	st, ca := w.Of(Stable), w.Of(Canary)
	r := Report{At: w.End, WindowStart: w.Start, WindowEnd: w.End, Stable: figuresOf(st), Canary: figuresOf(ca)}

	enough := st.Requests >= o.MinSamples && ca.Requests >= o.MinSamples
	tests := 1
	if !o.SkipLatency {
		tests = 3
	}
	if enough {
		a.looks++
		r.Look = a.looks
		r.Level = a.spending.Level(a.looks) / float64(tests)
	}
	r.Checks = append(r.Checks, a.errorCheck(st, ca, enough, r.Level))
	if !o.SkipLatency {
		r.Checks = append(r.Checks, a.shiftCheck(st, ca, enough, r.Level), a.tailCheck(st, ca, enough, r.Level))
	}
	if o.MaxErrorRate > 0 {
		c := Check{Name: "max error rate"}
		if ca.Requests >= o.MinSamples {
			c.Verdict = Pass
			if ca.ErrorRate() > o.MaxErrorRate {
				c.Verdict = Fail
			}
			c.Detail = fmt.Sprintf("canary error rate %s (%d of %d) against a limit of %s",
				pct(ca.ErrorRate()), ca.Errors, ca.Requests, pct(o.MaxErrorRate))
		} else {
			c.Detail = needMore("canary", ca.Requests, o.MinSamples)
		}
		r.Checks = append(r.Checks, c)
	}
	if o.MaxP99 > 0 {
		c := Check{Name: "max p99"}
		if ca.Requests >= o.MinSamples {
			c.Verdict = Pass
			p99 := ca.Latency.Quantile(0.99)
			if p99 > o.MaxP99 {
				c.Verdict = Fail
			}
			c.Detail = fmt.Sprintf("canary p99 latency %s against a limit of %s", round(p99), o.MaxP99)
		} else {
			c.Detail = needMore("canary", ca.Requests, o.MinSamples)
		}
		r.Checks = append(r.Checks, c)
	}

	r.Verdict = Pass
	var failed, missing []string
	for _, c := range r.Checks {
		switch c.Verdict {
		case Fail:
			failed = append(failed, c.Detail)
		case Insufficient:
			missing = append(missing, c.Detail)
		}
	}
	switch {
	case len(failed) > 0:
		r.Verdict = Fail
		r.Reason = "canary is worse than stable: " + strings.Join(failed, "; ")
	case len(missing) > 0:
		r.Verdict = Insufficient
		r.Reason = "insufficient data: " + missing[0]
	default:
		r.Reason = fmt.Sprintf("canary is no worse than stable over %s (%d vs %d requests; error rate %s vs %s, p99 %s vs %s)",
			w.End.Sub(w.Start).Round(time.Second), ca.Requests, st.Requests,
			pct(r.Canary.ErrorRate), pct(r.Stable.ErrorRate), round(r.Canary.P99), round(r.Stable.P99))
	}
	return r
}

func (a *Analyzer) errorCheck(st, ca *Sample, enough bool, level float64) Check {
	c := Check{Name: "error rate", Level: level}
	if !enough {
		c.Detail = needPair(st, ca, a.opts.MinSamples)
		return c
	}
	// Errors never exceed requests in a snapshot (see SnapshotAt); the
	// clamp keeps a future change from turning that into a panic.
	c.P = stats.ProportionGreater(int64(min(ca.Errors, ca.Requests)), int64(ca.Requests),
		int64(min(st.Errors, st.Requests)), int64(st.Requests))
	worse := ca.ErrorRate() > st.ErrorRate()+a.opts.ErrorMargin
	c.Verdict = Pass
	if c.P < level && worse {
		c.Verdict = Fail
	}
	c.Detail = fmt.Sprintf("canary error rate %s (%d of %d) vs stable %s (%d of %d), exact test p=%.2g %s level %.2g",
		pct(ca.ErrorRate()), ca.Errors, ca.Requests, pct(st.ErrorRate()), st.Errors, st.Requests,
		c.P, cmp(c.P, level), level)
	return c
}

func (a *Analyzer) shiftCheck(st, ca *Sample, enough bool, level float64) Check {
	c := Check{Name: "latency", Level: level}
	if !enough {
		c.Detail = needPair(st, ca, a.opts.MinSamples)
		return c
	}
	mw := stats.MannWhitneyBinned(ca.Latency.counts[:], st.Latency.counts[:])
	c.P = mw.P
	cp, sp := ca.Latency.Quantile(0.5), st.Latency.Quantile(0.5)
	worse := a.opts.LatencyMargin == 0 || float64(cp) > float64(sp)*(1+a.opts.LatencyMargin)
	c.Verdict = Pass
	if c.P < level && worse {
		c.Verdict = Fail
	}
	c.Detail = fmt.Sprintf("canary median latency %s vs stable %s (%s), canary slower in %.0f%% of pairs, Mann-Whitney p=%.2g %s level %.2g",
		round(cp), round(sp), change(cp, sp), 100*mw.AUC, c.P, cmp(c.P, level), level)
	return c
}

func (a *Analyzer) tailCheck(st, ca *Sample, enough bool, level float64) Check {
	q := a.opts.TailQuantile
	c := Check{Name: "latency tail", Level: level}
	if !enough {
		c.Detail = needPair(st, ca, a.opts.MinSamples)
		return c
	}
	// The threshold is a function of the pooled sample only, so under the
	// null every split of the pooled observations is equally likely and
	// the exact test on exceedances stays valid.
	var pooled Histogram
	pooled.Add(&st.Latency)
	pooled.Add(&ca.Latency)
	rank := uint64(q * float64(pooled.total))
	var seen uint64
	cut := numBuckets - 1
	for i, n := range pooled.counts {
		seen += n
		if seen > rank {
			cut = i
			break
		}
	}
	var caOver, stOver uint64
	for i := cut + 1; i < numBuckets; i++ {
		caOver += ca.Latency.counts[i]
		stOver += st.Latency.counts[i]
	}
	c.P = stats.ProportionGreater(int64(caOver), int64(ca.Requests), int64(stOver), int64(st.Requests))
	cq, sq := ca.Latency.Quantile(q), st.Latency.Quantile(q)
	worse := a.opts.LatencyMargin == 0 || float64(cq) > float64(sq)*(1+a.opts.LatencyMargin)
	c.Verdict = Pass
	if c.P < level && worse {
		c.Verdict = Fail
	}
	c.Detail = fmt.Sprintf("canary p%g latency %s vs stable %s (%s), %s vs %s of requests above the pooled p%g of %s, exact test p=%.2g %s level %.2g",
		100*q, round(cq), round(sq), change(cq, sq),
		pct(ratio(caOver, ca.Requests)), pct(ratio(stOver, st.Requests)), 100*q, round(bucketLow(cut+1)),
		c.P, cmp(c.P, level), level)
	return c
}

func needPair(st, ca *Sample, min uint64) string {
	if ca.Requests < min {
		return needMore("canary", ca.Requests, min)
	}
	return needMore("stable", st.Requests, min)
}

func needMore(who string, n, min uint64) string {
	return fmt.Sprintf("%s has %d requests in the window, needs %d", who, n, min)
}

func ratio(a, b uint64) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func pct(x float64) string {
	switch {
	case x == 0:
		return "0%"
	case x < 0.01:
		return fmt.Sprintf("%.2f%%", 100*x)
	default:
		return fmt.Sprintf("%.1f%%", 100*x)
	}
}

func change(a, b time.Duration) string {
	if b == 0 {
		return "stable has none"
	}
	return fmt.Sprintf("%+.0f%%", 100*(float64(a)/float64(b)-1))
}

func cmp(p, level float64) string {
	if p < level {
		return "below"
	}
	return "not below"
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond)
	default:
		return d.Round(time.Microsecond)
	}
}
