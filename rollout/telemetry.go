package rollout

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/metric"
	metricnoop "go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

const instrumentation = "github.com/batonhq/baton/rollout"

type telemetry struct {
	tracer   trace.Tracer
	steps    metric.Int64Counter
	duration metric.Float64Histogram
	analyses metric.Int64Counter
	commands metric.Int64Counter
}

func newTelemetry(tp trace.TracerProvider, mp metric.MeterProvider) *telemetry {
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	if mp == nil {
		mp = metricnoop.NewMeterProvider()
	}
	m := mp.Meter(instrumentation)
	t := &telemetry{tracer: tp.Tracer(instrumentation)}
	// Instrument creation only fails on invalid names, which are constant
	// here; the returned instruments are then no-ops, never nil.
	t.steps, _ = m.Int64Counter("baton.rollout.steps", metric.WithDescription("Step outcomes, by kind and outcome."))
	t.duration, _ = m.Float64Histogram("baton.rollout.step.duration", metric.WithUnit("s"), metric.WithDescription("Duration of finished steps."))
	t.analyses, _ = m.Int64Counter("baton.rollout.analyses", metric.WithDescription("Analysis verdicts."))
	t.commands, _ = m.Int64Counter("baton.rollout.commands", metric.WithDescription("Accepted operator commands."))
	return t
}

func (t *telemetry) startRollout(ctx context.Context, id string) (context.Context, func(error)) {
	ctx, span := t.tracer.Start(ctx, "rollout "+id, trace.WithAttributes(attribute.String("rollout.id", id)))
	return ctx, func(err error) { endSpan(span, err) }
}

func (t *telemetry) startStep(ctx context.Context, name string, kind Kind, op string) (context.Context, func(error)) {
	ctx, span := t.tracer.Start(ctx, op+" "+name, trace.WithAttributes(
		attribute.String("rollout.step", name), attribute.String("rollout.step.kind", string(kind)), attribute.String("rollout.op", op)))
	return ctx, func(err error) { endSpan(span, err) }
}

func endSpan(span trace.Span, err error) {
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

func (t *telemetry) stepOutcome(ctx context.Context, kind Kind, outcome string, d time.Duration) {
	attrs := metric.WithAttributes(attribute.String("kind", string(kind)), attribute.String("outcome", outcome))
	t.steps.Add(ctx, 1, attrs)
	if d > 0 {
		t.duration.Record(ctx, d.Seconds(), attrs)
	}
}

func (t *telemetry) analysis(ctx context.Context, v Verdict) {
	t.analyses.Add(ctx, 1, metric.WithAttributes(attribute.String("verdict", v.String())))
}

func (t *telemetry) command(ctx context.Context, cmd string) {
	t.commands.Add(ctx, 1, metric.WithAttributes(attribute.String("command", cmd)))
}
