package promanalysis

import (
	"errors"
	"fmt"
	"math"
	"text/template"
	"time"

	"github.com/prometheus/client_golang/api"
)

// Disabled, as a query of Queries, turns that query off: no latency test
// (LatencyBuckets), no cut at the last weight change (Weight).
const Disabled = "-"

// Default queries, over the names canary's OpenTelemetry instruments get
// through the OpenTelemetry Prometheus exporter with its default
// translation (baton.canary.requests becomes baton_canary_requests_total).
const (
	DefaultRequestsQuery       = `sum(increase(baton_canary_requests_total{{.Selector}}[{{.Range}}]))`
	DefaultErrorsQuery         = `sum(increase(baton_canary_errors_total{{.Selector}}[{{.Range}}]))`
	DefaultLatencyBucketsQuery = `sum by (le) (increase(baton_canary_latency_seconds_bucket{{.Selector}}[{{.Range}}]))`
	DefaultWeightQuery         = `max(baton_canary_weight_ratio{{.Common}})`
)

// Defaults for Options.
const (
	DefaultVariantLabel = "variant"
	DefaultStable       = "stable"
	DefaultCanary       = "canary"
	// DefaultWindow is the longest span compared.
	DefaultWindow = 5 * time.Minute
	// DefaultStep is the step of the range queries and the range of
	// their increase(): at least twice the scrape interval.
	DefaultStep = 30 * time.Second
	// DefaultTimeout bounds each query.
	DefaultTimeout = 30 * time.Second
	// DefaultAlpha bounds the probability that a canary within the
	// margins fails any analysis of one rollout.
	DefaultAlpha = 0.01
	// DefaultLooks is the planned number of analyses when neither
	// Options.Looks nor the rollout's plan (PlanLooks) says.
	DefaultLooks = 30
	// DefaultMinRequests is what each variant needs before the latency
	// test (a large-sample test) and the absolute limits run.
	DefaultMinRequests = 100
	// DefaultLatencyMargin is the tolerated relative slowdown of the
	// canary's typical (geometric mean) latency: 5%.
	DefaultLatencyMargin = 0.05
	// DefaultPassErrorMargin is the error-rate increase the data must
	// rule out for a Pass: 0.5 point.
	DefaultPassErrorMargin = 0.005
	// DefaultPassLevel is the level of the tests behind a Pass.
	DefaultPassLevel = 0.01
	// maxSeries bounds the series one query may return.
	maxSeries = 1000
)

// Queries are text/template templates of PromQL, rendered once per
// variant. A template sees .Selector ({job="api",variant="canary"}),
// .Matchers (the same without braces), .Common and .CommonMatchers
// (without the variant), .Variant (the quoted label value) and .Range
// (Options.Step as a PromQL duration). Every field is escaped: label
// values are quoted literals, label names checked. The template text
// itself is the operator's and is run as written.
//
// A zero field means its Default*Query; Disabled turns it off.
type Queries struct {
	// Requests and Errors return the variant's requests and failed
	// requests in each step (increase() over .Range of counters); the
	// analysis adds the steps up into counts for the exact error test.
	Requests, Errors string
	// LatencyBuckets returns the variant's requests per cumulative
	// latency bucket in each step, one series per "le" label (as
	// increase() of a Prometheus histogram's _bucket series).
	LatencyBuckets string
	// Weight returns the canary's share (0..1) at each step, without
	// the variant; only the steps since it last changed are compared.
	Weight string
	// ErrorRate and Latency, when set, replace the tests by thresholds
	// on whatever these return per variant (averaged over the steps):
	// an error ratio (0..1) and a latency in seconds (a quantile from
	// histogram_quantile, a summary's). Use them when counters or
	// buckets are not available; they are not statistical tests.
	ErrorRate, Latency string
}

// Options configure an Analyzer. Zero fields mean the documented
// defaults; Address or Client is required.
type Options struct {
	// Address is the Prometheus base URL (http://127.0.0.1:9090); Client
	// takes precedence when set.
	Address string
	Client  api.Client
	// Labels select the service's series, for both variants (job,
	// namespace). Names must be valid label names.
	Labels map[string]string
	// VariantLabel is the label that tells the variants apart; Stable
	// and Canary its values. Zero means DefaultVariantLabel,
	// DefaultStable and DefaultCanary.
	VariantLabel, Stable, Canary string
	// Queries override the default PromQL.
	Queries Queries
	// Window is the longest span compared, ending at the analysis;
	// Step the range queries' step (at least twice the scrape
	// interval). Zero means DefaultWindow and DefaultStep.
	Window, Step time.Duration
	// Timeout bounds each query; zero means DefaultTimeout.
	Timeout time.Duration
	// Now tells the time at which an analysis ends; nil means time.Now.
	Now func() time.Time

	// Alpha is the false-rollback budget of one rollout, split evenly
	// between the error and the latency test and spent over Looks
	// (Pocock spending, a union bound over looks); zero means
	// DefaultAlpha. Looks zero means what the rollout plans, else
	// DefaultLooks.
	Alpha float64
	Looks int
	// MinRequests is what each variant needs for the latency test and
	// the thresholds; zero means DefaultMinRequests.
	MinRequests float64
	// ErrorMargin is the absolute error-rate increase tolerated (zero
	// means none: the exact test); LatencyMargin the relative latency
	// increase tolerated (zero means DefaultLatencyMargin, negative
	// none).
	ErrorMargin, LatencyMargin float64
	// PassErrorMargin and PassLatencyMargin are the increases the data
	// must rule out, at PassLevel, for a Pass; zero means
	// DefaultPassErrorMargin, LatencyMargin and DefaultPassLevel.
	PassErrorMargin, PassLatencyMargin, PassLevel float64
	// MaxErrorRate and MaxLatency fail a canary above them, whatever
	// stable does (MaxLatency: its p99 from the buckets, or the Latency
	// query's value); zero means no limit.
	MaxErrorRate float64
	MaxLatency   time.Duration
}

// OptionError reports an invalid option.
type OptionError struct {
	Field  string
	Reason string
}

func (e *OptionError) Error() string { return "promanalysis: option " + e.Field + ": " + e.Reason }

func optErr(field, format string, args ...any) error {
	return &OptionError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// QueryError reports a query that failed or returned what the analysis
// cannot use.
type QueryError struct {
	What  string // "requests of canary", "weight"
	Query string
	Err   error
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("promanalysis: %s: query %s: %v", e.What, e.Query, e.Err)
}

func (e *QueryError) Unwrap() error { return e.Err }

// ErrNoClient is returned by New without Address or Client.
var ErrNoClient = errors.New("promanalysis: neither Address nor Client is set")

type queries struct {
	requests, errors, buckets, weight, errorRate, latency *template.Template
}

func (o *Options) normalise() (queries, error) {
	var q queries
	if o.VariantLabel == "" {
		o.VariantLabel = DefaultVariantLabel
	}
	if !ValidLabelName(o.VariantLabel) {
		return q, optErr("VariantLabel", "%q is not a valid Prometheus label name", o.VariantLabel)
	}
	if _, ok := o.Labels[o.VariantLabel]; ok {
		return q, optErr("Labels", "must not set the variant label %s", o.VariantLabel)
	}
	if err := checkLabels(o.Labels); err != nil {
		return q, err
	}
	if o.Stable == "" {
		o.Stable = DefaultStable
	}
	if o.Canary == "" {
		o.Canary = DefaultCanary
	}
	if o.Stable == o.Canary {
		return q, optErr("Canary", "must differ from Stable (%q)", o.Stable)
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"Alpha", o.Alpha}, {"PassLevel", o.PassLevel}} {
		if f.v < 0 || f.v >= 1 || math.IsNaN(f.v) {
			return q, optErr(f.name, "must be in (0, 1), got %v", f.v)
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"ErrorMargin", o.ErrorMargin}, {"PassErrorMargin", o.PassErrorMargin}, {"MaxErrorRate", o.MaxErrorRate}} {
		if f.v < 0 || f.v > 1 || math.IsNaN(f.v) {
			return q, optErr(f.name, "must be in [0, 1], got %v", f.v)
		}
	}
	if o.Looks < 0 || o.Window < 0 || o.Step < 0 || o.Timeout < 0 || o.MinRequests < 0 || o.PassLatencyMargin < 0 || o.MaxLatency < 0 {
		return q, optErr("Looks, Window, Step, Timeout, MinRequests, PassLatencyMargin, MaxLatency", "must not be negative")
	}
	def := func(p *float64, d float64) {
		if *p == 0 {
			*p = d
		}
	}
	def(&o.Alpha, DefaultAlpha)
	def(&o.MinRequests, DefaultMinRequests)
	def(&o.LatencyMargin, DefaultLatencyMargin)
	def(&o.PassLatencyMargin, max(o.LatencyMargin, 0))
	def(&o.PassLatencyMargin, DefaultLatencyMargin)
	o.LatencyMargin = max(o.LatencyMargin, 0)
	def(&o.PassErrorMargin, DefaultPassErrorMargin)
	def(&o.PassLevel, DefaultPassLevel)
	if o.Window == 0 {
		o.Window = DefaultWindow
	}
	if o.Step == 0 {
		o.Step = DefaultStep
	}
	if o.Step < time.Second || o.Step > o.Window {
		return q, optErr("Step", "%s must be at least 1s and at most Window (%s)", o.Step, o.Window)
	}
	if o.Window/o.Step > 11000 {
		return q, optErr("Window", "%s over steps of %s is more points than Prometheus returns (11,000)", o.Window, o.Step)
	}
	if o.Timeout == 0 {
		o.Timeout = DefaultTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	var err error
	for _, t := range []struct {
		p         **template.Template
		name, txt string
		def       string
	}{
		{&q.requests, "Requests", o.Queries.Requests, DefaultRequestsQuery},
		{&q.errors, "Errors", o.Queries.Errors, DefaultErrorsQuery},
		{&q.buckets, "LatencyBuckets", o.Queries.LatencyBuckets, DefaultLatencyBucketsQuery},
		{&q.weight, "Weight", o.Queries.Weight, DefaultWeightQuery},
		{&q.errorRate, "ErrorRate", o.Queries.ErrorRate, Disabled},
		{&q.latency, "Latency", o.Queries.Latency, Disabled},
	} {
		if *t.p, err = parseQuery(t.name, t.txt, t.def); err != nil {
			return q, err
		}
	}
	if q.requests == nil {
		return q, optErr("Queries.Requests", "cannot be disabled: every test and threshold needs the request counts")
	}
	if q.errors == nil && q.errorRate == nil {
		return q, optErr("Queries.Errors", "cannot be disabled without an ErrorRate query")
	}
	return q, nil
}
