package fleet

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
)

const instrumentation = "github.com/batonhq/baton/rollout/fleet"

// telemetry holds a member's instruments. The gauges read the member's
// state at collection time, so nothing costs anything between scrapes.
type telemetry struct {
	outages   metric.Int64Counter
	leaseLost metric.Int64Counter
	takeovers metric.Int64Counter
	fenced    metric.Int64Counter
	leading   atomic.Int64 // 1 while a Driver of this member leads
	attrs     metric.MeasurementOption
	reg       metric.Registration // the gauges' callback, unregistered by Close
}

func newTelemetry(mp metric.MeterProvider, m *Member) *telemetry {
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	meter := mp.Meter(instrumentation)
	t := &telemetry{attrs: metric.WithAttributes(attribute.String("fleet.member", m.info.ID))}
	// Instrument creation fails only on invalid names, constant here; the
	// instruments are then no-ops, never nil.
	t.outages, _ = meter.Int64Counter("baton.fleet.engine.outages", metric.WithDescription("Times the engine stopped answering this member's probes."))
	t.leaseLost, _ = meter.Int64Counter("baton.fleet.lease.lost", metric.WithDescription("Membership leases lost (expired or not renewed)."))
	t.takeovers, _ = meter.Int64Counter("baton.fleet.driver.takeovers", metric.WithDescription("Leaderships won by this member's driver."))
	t.fenced, _ = meter.Int64Counter("baton.fleet.writes.fenced", metric.WithDescription("Writes of this member refused because its leadership was lost."))
	stale, _ := meter.Int64ObservableGauge("baton.fleet.stale", metric.WithDescription("1 while this member may be behind the fleet (engine unreachable or membership lapsed)."))
	members, _ := meter.Int64ObservableGauge("baton.fleet.members", metric.WithDescription("Live members as this member last saw them."))
	leading, _ := meter.Int64ObservableGauge("baton.fleet.driver.leading", metric.WithDescription("1 while this member drives the fleet."))
	t.reg, _ = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		h := m.Health()
		v := int64(0)
		if h.Stale() {
			v = 1
		}
		o.ObserveInt64(stale, v, t.attrs)
		o.ObserveInt64(members, int64(len(m.Members())), t.attrs)
		o.ObserveInt64(leading, t.leading.Load(), t.attrs)
		return nil
	}, stale, members, leading)
	return t
}

func (t *telemetry) close() {
	if t.reg != nil {
		_ = t.reg.Unregister()
	}
}
