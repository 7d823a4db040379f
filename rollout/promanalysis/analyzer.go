package promanalysis

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"

	"github.com/batonhq/baton/internal/stats"
	"github.com/batonhq/baton/rollout"
)

// Figures are one variant's data over the compared span. Counts come from
// increase(), which extrapolates to the ends of each step, so they are
// estimates, rounded for the exact test. The zero value is no traffic.
type Figures struct {
	Requests, Errors float64
	ErrorRate        float64
	P50, P99         time.Duration // from the buckets; 0 without
	// Latency is the Latency query's value (threshold mode); 0 without.
	Latency time.Duration
}

// Check is one test or threshold of a Report.
type Check struct {
	Name    string // "error rate", "latency", "max error rate", "max latency"
	Verdict rollout.Verdict
	// P is the p-value of "the canary is worse than the margin allows",
	// Level the alpha-spending level it was held to and Look the look it
	// spent (all 0 for thresholds and tests that did not run); PassP the
	// p-value of the non-inferiority test behind a Pass (1 without).
	P, Level, PassP float64
	Look            int
	Detail          string
}

// Report is the outcome of one analysis.
type Report struct {
	Verdict rollout.Verdict
	Reason  string
	// From and To are the span compared: the steps since the weight
	// last changed, within the window. Weight is the canary's share
	// (0..1), -1 when the weight query is disabled or returned nothing.
	From, To       time.Time
	Weight         float64
	Stable, Canary Figures
	Checks         []Check
}

const (
	testErrors = iota
	testLatency
	numTests
)

// Analyzer judges a canary from Prometheus. It implements
// rollout.Analyzer, rollout.MeasuredAnalyzer and rollout.LookPlanner. Use New; the zero value is not usable. It is
// safe for concurrent use (analyses are serialised).
type Analyzer struct {
	opts Options
	q    queries
	api  v1.API

	mu       sync.Mutex
	planned  int // looks planned by the rollout, when Options.Looks is 0
	spending [numTests]stats.Spending
	looks    [numTests]int
}

// New checks o and returns an analyzer at look 0. It does not contact
// Prometheus.
func New(o Options) (*Analyzer, error) {
	q, err := o.normalise()
	if err != nil {
		return nil, err
	}
	c := o.Client
	if c == nil {
		if o.Address == "" {
			return nil, ErrNoClient
		}
		if c, err = api.NewClient(api.Config{Address: o.Address}); err != nil {
			return nil, optErr("Address", "%q: %v", o.Address, err)
		}
	}
	a := &Analyzer{opts: o, q: q, api: v1.NewAPI(c)}
	a.plan()
	return a, nil
}

func (a *Analyzer) plan() {
	looks := a.opts.Looks
	if looks == 0 {
		looks = a.planned
	}
	if looks == 0 {
		looks = DefaultLooks
	}
	for i := range a.spending {
		a.spending[i] = stats.Spending{Alpha: a.opts.Alpha / numTests, Looks: looks}
	}
	a.looks = [numTests]int{}
}

// PlanLooks implements rollout.LookPlanner: the alpha budget is spread
// over the n analyses the rollout's plan makes (unless Options.Looks is
// set). It starts a new spending sequence.
func (a *Analyzer) PlanLooks(n int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.planned = n
	a.plan()
}

// Analyze implements rollout.Analyzer: one Measure, its verdict and
// reason. A query that fails is an error (an Inconclusive measurement).
func (a *Analyzer) Analyze(ctx context.Context) (rollout.Verdict, string, error) {
	v, reason, _, err := a.AnalyzeMeasured(ctx)
	return v, reason, err
}

// AnalyzeMeasured implements rollout.MeasuredAnalyzer: Analyze with the
// figures of both variants over the span compared, which the rollout
// records with the decision for its console's charts. Counts are
// increase()'s estimates, rounded; the weight is 0 when unknown.
func (a *Analyzer) AnalyzeMeasured(ctx context.Context) (rollout.Verdict, string, *rollout.Measurement, error) {
	r, err := a.Measure(ctx)
	if err != nil {
		return rollout.Inconclusive, "", nil, err
	}
	m := &rollout.Measurement{WindowStart: r.From, WindowEnd: r.To, Canary: r.Canary.measured(), Stable: r.Stable.measured()}
	if r.Weight >= 0 {
		m.Weight = uint32(math.Round(min(r.Weight, 1) * float64(rollout.MaxWeight)))
	}
	return r.Verdict, r.Reason, m, nil
}

func (f Figures) measured() rollout.Figures {
	return rollout.Figures{
		Requests: uint64(math.Round(max(f.Requests, 0))), Errors: uint64(math.Round(max(f.Errors, 0))),
		ErrorRate: f.ErrorRate, P50Seconds: f.P50.Seconds(), P99Seconds: f.P99.Seconds(),
	}
}

// Measure queries Prometheus and compares the variants over the window
// ending now, from the last weight change on.
func (a *Analyzer) Measure(ctx context.Context) (Report, error) {
	s := a.span()
	var r Report
	r.Weight = -1
	if a.q.weight != nil {
		m, err := a.query(ctx, "weight", a.q.weight, a.data(a.opts.Canary), s)
		if err != nil {
			return r, err
		}
		if r.Weight, err = cut(m, &s); err != nil {
			return r, &QueryError{What: "weight", Query: a.q.weight.Name(), Err: err}
		}
	}
	r.From, r.To = s.from.Time().Add(-s.r.Step), s.r.End
	var hs [2]histogram
	for i, v := range []string{a.opts.Stable, a.opts.Canary} {
		f := &r.Stable
		if i == 1 {
			f = &r.Canary
		}
		if err := a.figures(ctx, v, s, f, &hs[i]); err != nil {
			return r, err
		}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r.Checks = a.checks(&r, &hs[0], &hs[1])
	r.Verdict, r.Reason = verdict(&r)
	return r, nil
}

// figures runs the queries of one variant.
func (a *Analyzer) figures(ctx context.Context, v string, s span, f *Figures, h *histogram) error {
	d := a.data(v)
	m, err := a.query(ctx, "requests of "+v, a.q.requests, d, s)
	if err != nil {
		return err
	}
	f.Requests = total(m, s)
	if a.q.errorRate != nil {
		if m, err = a.query(ctx, "error rate of "+v, a.q.errorRate, d, s); err != nil {
			return err
		}
		f.ErrorRate, _ = mean(m, s)
		f.Errors = f.ErrorRate * f.Requests
	} else {
		if m, err = a.query(ctx, "errors of "+v, a.q.errors, d, s); err != nil {
			return err
		}
		f.Errors = min(total(m, s), f.Requests)
		if f.Requests > 0 {
			f.ErrorRate = f.Errors / f.Requests
		}
	}
	if a.q.latency != nil {
		if m, err = a.query(ctx, "latency of "+v, a.q.latency, d, s); err != nil {
			return err
		}
		l, _ := mean(m, s)
		f.Latency = seconds(l)
	} else if a.q.buckets != nil {
		if m, err = a.query(ctx, "latency buckets of "+v, a.q.buckets, d, s); err != nil {
			return err
		}
		if *h, err = buckets(m, s); err != nil {
			return &QueryError{What: "latency buckets of " + v, Query: a.q.buckets.Name(), Err: err}
		}
		f.P50, f.P99 = h.quantile(0.5), h.quantile(0.99)
	}
	return nil
}

// verdict combines the checks as canary's analysis does: any Fail fails;
// a Pass needs the error rate and (when measured) the latency to pass;
// limits can only fail.
func verdict(r *Report) (rollout.Verdict, string) {
	var failed, open []string
	for _, c := range r.Checks {
		switch {
		case c.Verdict == rollout.Fail:
			failed = append(failed, c.Detail)
		case c.Verdict != rollout.Pass && (c.Name == "error rate" || c.Name == "latency"):
			open = append(open, c.Detail)
		}
	}
	span := r.To.Sub(r.From).Round(time.Second)
	at := "weight unknown"
	if r.Weight >= 0 {
		at = fmt.Sprintf("weight %.4g%%", 100*r.Weight)
	}
	switch {
	case len(failed) > 0:
		return rollout.Fail, "canary is worse than stable (Prometheus): " + strings.Join(failed, "; ")
	case len(open) > 0:
		return rollout.Inconclusive, fmt.Sprintf("inconclusive over %s at %s (Prometheus): %s", span, at, strings.Join(open, "; "))
	}
	var details []string
	for _, c := range r.Checks {
		details = append(details, c.Detail)
	}
	return rollout.Pass, fmt.Sprintf("canary is no worse than stable over %s at %s (Prometheus): %s",
		span, at, strings.Join(details, "; "))
}

var (
	_ rollout.Analyzer         = (*Analyzer)(nil)
	_ rollout.MeasuredAnalyzer = (*Analyzer)(nil)
	_ rollout.LookPlanner      = (*Analyzer)(nil)
)
