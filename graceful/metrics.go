package graceful

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
)

// Upgrade outcomes as recorded in the baton.graceful.upgrades counter.
const (
	OutcomeSucceeded  = "succeeded"
	OutcomeFailed     = "failed"
	OutcomeRolledBack = "rolled_back"
)

type metrics struct {
	upgrades metric.Int64Counter
	handoff  metric.Float64Histogram
	conns    metric.Int64Counter
	drain    metric.Float64Histogram
}

func newMetrics(mp metric.MeterProvider) *metrics {
	if mp == nil {
		mp = noop.NewMeterProvider()
	}
	m := mp.Meter("github.com/batonhq/baton/graceful")
	// Instrument creation only fails on invalid names, which are constant
	// here; a failed instrument is a no-op one.
	upgrades, _ := m.Int64Counter("baton.graceful.upgrades",
		metric.WithDescription("Upgrades by outcome (succeeded, failed, rolled_back)."))
	handoff, _ := m.Float64Histogram("baton.graceful.handoff.duration", metric.WithUnit("s"),
		metric.WithDescription("Trigger to new process accepting, minus its own start-up."))
	conns, _ := m.Int64Counter("baton.graceful.drain.connections",
		metric.WithDescription("Connections at drain start, by result (drained, forced)."))
	drain, _ := m.Float64Histogram("baton.graceful.drain.duration", metric.WithUnit("s"),
		metric.WithDescription("Time from drain start to the last connection gone."))
	return &metrics{upgrades: upgrades, handoff: handoff, conns: conns, drain: drain}
}

func (m *metrics) upgrade(outcome string) {
	m.upgrades.Add(context.Background(), 1, metric.WithAttributes(attribute.String("outcome", outcome)))
}

func (m *metrics) handedOff(d time.Duration) {
	m.handoff.Record(context.Background(), d.Seconds())
}

func (m *metrics) drained(r drainResult) {
	ctx := context.Background()
	m.conns.Add(ctx, int64(r.drained), metric.WithAttributes(attribute.String("result", "drained")))
	m.conns.Add(ctx, int64(r.forced), metric.WithAttributes(attribute.String("result", "forced")))
	m.drain.Record(ctx, r.took.Seconds())
}
