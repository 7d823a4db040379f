package flags

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// metrics exports the evaluation counters the hot path already keeps:
// evaluations cost nothing more with a MeterProvider than without one, and
// the work (summing shards, building attribute sets) happens at collection.
type metrics struct {
	reg      metric.Registration
	reloads  metric.Int64Counter
	rejects  metric.Int64Counter
	bgCtx    context.Context
	disabled bool
}

func newMetrics(s *Store, mp metric.MeterProvider) (*metrics, error) {
	m := &metrics{bgCtx: context.Background()}
	if mp == nil {
		mp = noop.NewMeterProvider()
		m.disabled = true
	}
	meter := mp.Meter("github.com/batonhq/baton/flags")
	evals, err := meter.Int64ObservableCounter("baton.flags.evaluations",
		metric.WithDescription("Flag evaluations by flag, variant and reason."),
		metric.WithUnit("{evaluation}"))
	if err != nil {
		return nil, err
	}
	if m.reloads, err = meter.Int64Counter("baton.flags.updates",
		metric.WithDescription("Accepted configuration updates."), metric.WithUnit("{update}")); err != nil {
		return nil, err
	}
	if m.rejects, err = meter.Int64Counter("baton.flags.rejected",
		metric.WithDescription("Rejected configuration updates (the previous configuration stayed in force)."),
		metric.WithUnit("{update}")); err != nil {
		return nil, err
	}
	if m.disabled {
		return m, nil
	}
	m.reg, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		sn := s.snap.Load()
		for key, f := range sn.flags {
			for vi := range f.variants {
				for r := reason(0); r < numCounted; r++ {
					n := f.counters[vi].total(r)
					if n == 0 {
						continue
					}
					o.ObserveInt64(evals, int64(n), metric.WithAttributes(
						attribute.String("flag", key),
						attribute.String("variant", f.variants[vi].name),
						attribute.String("reason", string(reasonNames[r]))))
				}
			}
			if n := f.usage.errors.Load(); n > 0 {
				o.ObserveInt64(evals, int64(n), metric.WithAttributes(
					attribute.String("flag", key), attribute.String("reason", string(ReasonError))))
			}
		}
		if n := s.unknown.Load(); n > 0 {
			o.ObserveInt64(evals, int64(n), metric.WithAttributes(
				attribute.String("reason", string(ReasonError)), attribute.String("error", string(CodeFlagNotFound))))
		}
		return nil
	}, evals)
	return m, err
}

func (m *metrics) updated()  { m.reloads.Add(m.bgCtx, 1) }
func (m *metrics) rejected() { m.rejects.Add(m.bgCtx, 1) }

func (m *metrics) close() error {
	if m.reg != nil {
		return m.reg.Unregister()
	}
	return nil
}
