package canary

import (
	"context"

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
)

// otelExport publishes the splitter's figures through observable
// instruments, read at collection time, so the request path pays nothing
// for export.
type otelExport struct {
	reg metric.Registration
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
	var attrs [numVariants]metric.ObserveOption
	for v := range attrs {
		attrs[v] = metric.WithAttributeSet(attribute.NewSet(attribute.String("variant", Variant(v).String())))
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
	return &otelExport{reg: reg}, nil
}

func (e *otelExport) close() { _ = e.reg.Unregister() }
