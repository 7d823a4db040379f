package canary

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/batonhq/baton/internal/stats"
)

// Verdict is the outcome of an analysis. The zero value is Inconclusive:
// without evidence either way nothing is concluded, nothing is rolled back
// and nothing is promoted.
type Verdict uint8

const (
	// Inconclusive means the data shows neither that the canary is worse
	// than stable nor that it is no worse: keep measuring.
	Inconclusive Verdict = iota
	// Pass means the data shows, at AnalysisOptions.PassLevel, that the
	// canary is no worse than stable by more than the pass margins: the
	// positive evidence a weight step needs.
	Pass
	// Fail means at least one check found the canary worse than its
	// margin allows, at the check's alpha-spending level.
	Fail
)

// String returns "inconclusive", "pass" or "fail".
func (v Verdict) String() string {
	switch v {
	case Inconclusive:
		return "inconclusive"
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
	// DefaultAlpha bounds the probability that a canary no worse than
	// stable (within the margins) is rolled back at any check of one
	// rollout.
	DefaultAlpha = 0.01
	// DefaultLooks is the planned number of checks when neither the
	// options nor a Controller's steps say otherwise.
	DefaultLooks = 30
	// DefaultMinSamples is the number of requests each variant needs
	// before the latency test (a large-sample test) and the absolute
	// limits run. The exact error and tail tests need no minimum.
	DefaultMinSamples = 100
	// DefaultLatencyMargin is the relative increase of the canary's
	// typical latency (geometric mean) tolerated before a rollback: 5%.
	DefaultLatencyMargin = 0.05
	// DefaultTailMargin is the relative increase of the share of canary
	// requests above the tail cut tolerated before a rollback: 50%.
	DefaultTailMargin = 0.5
	// DefaultPassErrorMargin is the error-rate increase (absolute, 0.5
	// percentage point) that the data must rule out for a Pass.
	DefaultPassErrorMargin = 0.005
	// DefaultStepLatencyFactor times PassLatencyMargin is the default
	// StepLatencyMargin: at a step before the last, the data must rule
	// out a slowdown twice the final margin (10% by default).
	DefaultStepLatencyFactor = 2
	// DefaultPassLevel is the significance level of the
	// non-inferiority tests behind a Pass.
	DefaultPassLevel = 0.01
)

// AnalysisOptions configures an Analyzer. Zero fields mean the defaults.
//
// Each check (a "look") compares canary and stable over the intervals run
// at the current weight (Snapshot.Current) with three tests, each a
// shifted null at its margin: error rate (exact one-sided two-proportion
// test), latency (one-sided z-test of the mean latency score, the log of
// the latency, with a sticky-key design effect) and latency tail (exact
// one-sided test of the rate of requests above the tail cut). The tests
// share Alpha (35% errors, 50% latency, 15% tail; the error test all of
// it with SkipLatency), each spent over its own looks by Spending; a look
// is spent only when the test could reject. The latency looks at one
// growing window of independent requests are tested at a
// group-sequential boundary, other looks at their spending increment.
// The probabilities spent sum to at most Alpha, so a canary no worse than
// its margins allow is rolled back with probability at most Alpha over
// the whole rollout (see the package documentation, The boundary).
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
	// MinSamples is the number of requests each variant needs for the
	// latency test and the absolute limits; zero means
	// DefaultMinSamples.
	MinSamples uint64
	// ErrorMargin is the absolute error-rate increase tolerated before a
	// rollback (0.001 = 0.1 point): the error test's null hypothesis is
	// "canary rate <= stable rate + ErrorMargin". Zero means none (the
	// exact test); a positive margin uses a large-sample z-test.
	ErrorMargin float64
	// LatencyMargin is the relative latency increase tolerated before a
	// rollback: the latency test's null hypothesis is "canary latency
	// <= stable latency x (1+LatencyMargin)" (geometric means). Zero
	// means DefaultLatencyMargin, negative means none.
	LatencyMargin float64
	// TailMargin is the relative increase of the share of requests above
	// the tail cut tolerated before a rollback; zero means
	// DefaultTailMargin, negative means none.
	TailMargin float64
	// PassErrorMargin is the error-rate increase (absolute) the data
	// must rule out for a Pass; zero means DefaultPassErrorMargin.
	PassErrorMargin float64
	// PassLatencyMargin is the relative latency increase the data must
	// rule out for a Pass; zero means LatencyMargin (or
	// DefaultLatencyMargin when LatencyMargin is negative).
	PassLatencyMargin float64
	// StepLatencyMargin is the relative latency increase the data must
	// rule out for a Pass at a Controller step that is not the last: the
	// weight then only rises to a step that tests the canary again, on
	// more traffic, before anything reaches 100%. Zero means
	// DefaultStepLatencyFactor times PassLatencyMargin; negative means
	// PassLatencyMargin (every step needs the full margin). Analyze and
	// AnalyzeWindow always use PassLatencyMargin.
	StepLatencyMargin float64
	// PassLevel is the level of each non-inferiority test behind a Pass;
	// zero means DefaultPassLevel.
	PassLevel float64
	// SkipLatency disables the latency and tail tests (the error test
	// gets the whole budget, and a Pass needs only the error rate).
	SkipLatency bool
	// MaxErrorRate fails the canary when its error rate is above it
	// (0.02 = 2%), once it has MinSamples requests, whatever stable
	// does; zero means no limit.
	MaxErrorRate float64
	// MaxP99 fails the canary when its p99 latency is above it, once it
	// has MinSamples requests; zero means no limit.
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

// Check is one test within a Report. The zero value is a check that did
// not run.
type Check struct {
	Name    string  // "error rate", "latency", "latency tail", "max error rate", "max p99"
	Verdict Verdict // Inconclusive when it could not decide
	// P is the p-value of the test that the canary is worse than the
	// margin allows (0 for absolute limits and tests that did not run).
	P float64
	// Level is the significance level P was held to, and Look the look
	// of this test's alpha-spending sequence it spent; both 0 when no
	// look was spent.
	Level float64
	Look  int
	// PassP is the p-value of the non-inferiority test (error rate and
	// latency); 1 when it did not run.
	PassP float64
	// DesignEffect is the variance inflation applied for requests that
	// share a sticky key (1: requests are independent).
	DesignEffect float64
	Detail       string // the figures behind it, in words
}

// Report is the result of one analysis. The zero value is an Inconclusive
// verdict from no data.
type Report struct {
	Verdict Verdict
	// Reason explains the verdict in one sentence a person understands.
	Reason string
	At     time.Time
	// WindowStart and WindowEnd are the span compared: the intervals at
	// Weight since it last changed.
	WindowStart, WindowEnd time.Time
	Weight                 uint32
	Stable, Canary         Figures
	Checks                 []Check
}

// Alone judges a canary that takes all the traffic, with no stable traffic
// to compare it with, by the report's absolute limits alone (MaxErrorRate,
// MaxP99): Fail when the report failed or a limit is exceeded, Pass when
// every limit set passed, Inconclusive when a limit could not be decided
// or none is set.
func (r Report) Alone() (Verdict, string) {
	var passed []string
	for _, c := range r.Checks {
		if c.Name != "max error rate" && c.Name != "max p99" {
			continue
		}
		switch c.Verdict {
		case Fail:
			return Fail, "canary at 100%: " + c.Detail
		case Pass:
			passed = append(passed, c.Detail)
		default:
			return Inconclusive, "canary at 100%: " + c.Detail
		}
	}
	if r.Verdict == Fail {
		return Fail, "canary at 100%: " + r.Reason
	}
	if len(passed) == 0 {
		return Inconclusive, "canary at 100%: no stable traffic to compare with, and no absolute limit (MaxErrorRate, MaxP99) to judge it alone"
	}
	return Pass, "canary at 100%, judged by its absolute limits: " + strings.Join(passed, "; ")
}

// Check returns the check named name, or the zero Check.
func (r *Report) Check(name string) Check {
	for _, c := range r.Checks {
		if c.Name == name {
			return c
		}
	}
	return Check{}
}

// alphaShares splits Alpha between the tests: half to the typical
// latency, whose effect beyond its margin takes the most requests to
// show; 35% to the error rate, whose exact test sees a point of errors
// soon; 15% to the tail test, which only ever fails a canary and mostly
// sees what the latency test sees. The shares sum to 1, so the union
// bound over the tests keeps the total at Alpha.
var alphaShares = [numTests]float64{testErrors: 0.35, testLatency: 0.5, testTail: 0.15}

const (
	testErrors = iota
	testLatency
	testTail
	numTests
)

// Analyzer compares canary with stable and keeps the count of looks that
// drives alpha spending. Use NewAnalyzer; the zero value is not usable. It
// is safe for concurrent use (analyses are serialised).
type Analyzer struct {
	opts     AnalysisOptions
	spending [numTests]stats.Spending
	mu       sync.Mutex
	looks    [numTests]int
	analyses int
	// path is the latency test's group-sequential path: the looks at
	// windows whose data starts at pathStart (one weight, growing).
	path      stats.Sequential
	pathStart time.Time
}

// NewAnalyzer returns an analyzer at look 0.
func NewAnalyzer(o AnalysisOptions) (*Analyzer, error) {
	for _, f := range []struct {
		name string
		v    float64
	}{{"Alpha", o.Alpha}, {"PassLevel", o.PassLevel}} {
		if f.v < 0 || f.v >= 1 {
			return nil, optErr(f.name, "must be in (0, 1), got %v", f.v)
		}
	}
	if o.Looks < 0 {
		return nil, optErr("Looks", "must not be negative, got %d", o.Looks)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"MaxErrorRate", o.MaxErrorRate}, {"ErrorMargin", o.ErrorMargin}, {"PassErrorMargin", o.PassErrorMargin}} {
		if f.v < 0 || f.v > 1 {
			return nil, optErr(f.name, "must be in [0, 1], got %v", f.v)
		}
	}
	if o.PassLatencyMargin < 0 {
		return nil, optErr("PassLatencyMargin", "must not be negative, got %v", o.PassLatencyMargin)
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
	if o.PassLatencyMargin == 0 {
		o.PassLatencyMargin = o.LatencyMargin
		if o.PassLatencyMargin < 0 {
			o.PassLatencyMargin = DefaultLatencyMargin
		}
	}
	switch {
	case o.StepLatencyMargin == 0:
		o.StepLatencyMargin = DefaultStepLatencyFactor * o.PassLatencyMargin
	case o.StepLatencyMargin < 0:
		o.StepLatencyMargin = o.PassLatencyMargin
	}
	o.LatencyMargin = max(o.LatencyMargin, 0)
	if o.TailMargin == 0 {
		o.TailMargin = DefaultTailMargin
	}
	o.TailMargin = max(o.TailMargin, 0)
	if o.PassErrorMargin == 0 {
		o.PassErrorMargin = DefaultPassErrorMargin
	}
	if o.PassLevel == 0 {
		o.PassLevel = DefaultPassLevel
	}
	a := &Analyzer{opts: o}
	share := [numTests]float64{testErrors: 1}
	if !o.SkipLatency {
		share = alphaShares
	}
	for i := range a.spending {
		a.spending[i] = stats.Spending{Alpha: o.Alpha * share[i], Looks: o.Looks, Shape: o.Spending}
	}
	return a, nil
}

// Looks returns how many analyses have spent budget so far.
func (a *Analyzer) Looks() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.analyses
}

// Reset starts a new alpha-spending sequence (a new rollout).
func (a *Analyzer) Reset() {
	a.mu.Lock()
	a.looks, a.analyses = [numTests]int{}, 0
	a.path, a.pathStart = stats.Sequential{}, time.Time{}
	a.mu.Unlock()
}

// Analyze compares the canary with stable over the intervals of s that ran
// at its current weight (Snapshot.Current). s may be one splitter's or the
// merge of several.
func (a *Analyzer) Analyze(s *Snapshot) Report { return a.AnalyzeWindow(s.Current()) }

// AnalyzeWindow compares the canary with stable over w. Only the intervals
// of one weight make a fair comparison: prefer Analyze.
func (a *Analyzer) AnalyzeWindow(w *Window) Report { return a.analyze(w, true) }

// analyze compares the variants over w; last says whether a Pass promotes
// to 100% (PassLatencyMargin) or to another analysed step
// (StepLatencyMargin).
func (a *Analyzer) analyze(w *Window, last bool) Report {
	a.mu.Lock()
	defer a.mu.Unlock()
	o := &a.opts
	st, ca := w.Of(Stable), w.Of(Canary)
	r := Report{At: w.End, WindowStart: w.Start, WindowEnd: w.End, Weight: w.Weight, Stable: figuresOf(st), Canary: figuresOf(ca)}
	before := a.looks
	r.Checks = append(r.Checks, a.errorCheck(st, ca))
	if !o.SkipLatency {
		r.Checks = append(r.Checks, a.latencyCheck(w.first, st, ca, last), a.tailCheck(st, ca))
	}
	if a.looks != before {
		a.analyses++
	}
	if o.MaxErrorRate > 0 {
		c := Check{Name: "max error rate", PassP: 1, DesignEffect: 1}
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
		c := Check{Name: "max p99", PassP: 1, DesignEffect: 1}
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

	var failed, open []string
	for i, c := range r.Checks {
		switch {
		case c.Verdict == Fail:
			failed = append(failed, c.Detail)
		case c.Verdict != Pass && (i == 0 || c.Name == "latency"):
			// Only the error rate and the latency can vouch for a
			// canary; the tail test and the limits can only fail it.
			open = append(open, c.Detail)
		}
	}
	span := w.End.Sub(w.Start).Round(time.Second)
	switch {
	case len(failed) > 0:
		r.Verdict = Fail
		r.Reason = "canary is worse than stable: " + strings.Join(failed, "; ")
	case len(open) > 0:
		r.Verdict = Inconclusive
		r.Reason = fmt.Sprintf("inconclusive after %s at %s: %s", span, formatWeight(w.Weight), open[0])
	default:
		r.Verdict = Pass
		r.Reason = fmt.Sprintf("canary is no worse than stable over %s at %s (%d vs %d requests; error rate %s vs %s, p99 %s vs %s)",
			span, formatWeight(w.Weight), ca.Requests, st.Requests,
			pct(r.Canary.ErrorRate), pct(r.Stable.ErrorRate), round(r.Canary.P99), round(r.Stable.P99))
	}
	return r
}

// spend takes the next look of test t, returning its number and level.
func (a *Analyzer) spend(t int) (int, float64) {
	a.looks[t]++
	return a.looks[t], a.spending[t].Level(a.looks[t])
}

// nextLevel is the level the next look of test t would get.
func (a *Analyzer) nextLevel(t int) float64 { return a.spending[t].Level(a.looks[t] + 1) }

func needPair(st, ca *Sample, min uint64) string {
	if ca.Requests < min {
		return needMore("canary", ca.Requests, min)
	}
	return needMore("stable", st.Requests, min)
}

func needMore(who string, n, min uint64) string {
	return fmt.Sprintf("%s has %d requests, needs %d", who, n, min)
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
