package canary

import (
	"context"
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Instrument names exported to the MeterProvider; every series carries a
// "variant" attribute (stable, canary, mirror).
const (
	MetricRequests   = "baton.canary.requests"
	MetricErrors     = "baton.canary.errors"
	MetricCanceled   = "baton.canary.canceled"
	MetricLatencyP50 = "baton.canary.latency.p50"
	MetricLatencyP99 = "baton.canary.latency.p99"
	MetricWeight     = "baton.canary.weight"
	// MetricLatency is a histogram of the latency of every request the
	// splitter served (and mirrored), in seconds, over LatencyBuckets:
	// the distribution a metrics server such as Prometheus compares
	// between variants, where the p50/p99 gauges cannot be merged.
	MetricLatency = "baton.canary.latency"
)

// LatencyBuckets returns the upper bounds, in seconds, of the buckets of
// the MetricLatency histogram: powers of √2 from 250 µs to about 65.5 s
// (37 bounds, each bucket 41% wider than the one before), fine enough
// for a comparison of log latencies and few enough series per variant. A
// fresh slice on every call.
func LatencyBuckets() []float64 {
	b := make([]float64, 0, 37)
	for k := -4; k <= 32; k++ {
		b = append(b, math.Exp2(float64(k)/2)/1000)
	}
	return b
}

// otelExport publishes the splitter's figures through observable
// instruments, read at collection time, so the request path pays nothing
// for export.
type otelExport struct {
	reg     metric.Registration
	latency metric.Float64Histogram
	attrs   [numVariants]metric.RecordOption
}

// record adds one request's latency to the histogram: the one cost of
// export on the request path, paid only with a MeterProvider.
func (e *otelExport) record(v Variant, d time.Duration) {
	if e != nil && v < numVariants {
		e.latency.Record(context.Background(), d.Seconds(), e.attrs[v])
	}
}

func newOtelExport(mp metric.MeterProvider, s *Splitter) (*otelExport, error) {
	m := mp.Meter("github.com/batonhq/baton/canary")
	req, err := m.Int64ObservableCounter(MetricRequests, metric.WithUnit("{request}"),
		metric.WithDescription("Requests completed, per variant."))
	if err != nil {
		return nil, err
	}
	errs, err := m.Int64ObservableCounter(MetricErrors, metric.WithUnit("{request}"),
		metric.WithDescription("Requests that failed (5xx, panic, upstream unreachable), per variant."))
	if err != nil {
		return nil, err
	}
	canc, err := m.Int64ObservableCounter(MetricCanceled, metric.WithUnit("{request}"),
		metric.WithDescription("Requests whose client went away before a complete answer, per variant; not in requests or errors."))
	if err != nil {
		return nil, err
	}
	p50, err := m.Float64ObservableGauge(MetricLatencyP50, metric.WithUnit("s"),
		metric.WithDescription("Median latency at the current weight over the analysis window, per variant."))
	if err != nil {
		return nil, err
	}
	p99, err := m.Float64ObservableGauge(MetricLatencyP99, metric.WithUnit("s"),
		metric.WithDescription("99th percentile latency at the current weight over the analysis window, per variant."))
	if err != nil {
		return nil, err
	}
	weight, err := m.Float64ObservableGauge(MetricWeight, metric.WithUnit("1"),
		metric.WithDescription("Share of traffic routed to the canary (0..1)."))
	if err != nil {
		return nil, err
	}
	lat, err := m.Float64Histogram(MetricLatency, metric.WithUnit("s"),
		metric.WithDescription("Latency of the requests served, per variant."),
		metric.WithExplicitBucketBoundaries(LatencyBuckets()...))
	if err != nil {
		return nil, err
	}
	e := &otelExport{latency: lat}
	var attrs [numVariants]metric.ObserveOption
	for v := range attrs {
		set := metric.WithAttributeSet(attribute.NewSet(attribute.String("variant", Variant(v).String())))
		attrs[v], e.attrs[v] = set, set
	}
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		w := s.metrics.Snapshot().Current()
		for v := range Variant(numVariants) {
			n, e := s.metrics.Totals(v)
			o.ObserveInt64(req, int64(n), attrs[v])
			o.ObserveInt64(errs, int64(e), attrs[v])
			o.ObserveInt64(canc, int64(s.metrics.Canceled(v)), attrs[v])
			if lat := &w.Of(v).Latency; lat.Count() > 0 {
				o.ObserveFloat64(p50, lat.Quantile(0.5).Seconds(), attrs[v])
				o.ObserveFloat64(p99, lat.Quantile(0.99).Seconds(), attrs[v])
			}
		}
		o.ObserveFloat64(weight, float64(s.weight.Load())/MaxWeight)
		return nil
	}, req, errs, canc, p50, p99, weight)
	if err != nil {
		return nil, err
	}
	e.reg = reg
	return e, nil
}

func (e *otelExport) close() { _ = e.reg.Unregister() }
