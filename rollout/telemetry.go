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

// startRollout starts the span of one Run. The first Run of a rollout
// starts its root span "rollout <id>" and returns a ref to it, for the
// state; a later Run (a resume in this or another process, a handoff, a
// Retry) continues that trace with a span "rollout <id> resumed" whose
// parent is the stored root, linked to the caller's span if there is one.
func (t *telemetry) startRollout(ctx context.Context, id, version string, stored *TraceRef) (context.Context, *TraceRef, func(error)) {
	attrs := trace.WithAttributes(attribute.String("rollout.id", id), attribute.String("rollout.version", version))
	if root, ok := stored.spanContext(); ok {
		var opts []trace.SpanStartOption
		if caller := trace.SpanContextFromContext(ctx); caller.IsValid() {
			opts = append(opts, trace.WithLinks(trace.Link{SpanContext: caller}))
		}
		ctx, span := t.tracer.Start(trace.ContextWithRemoteSpanContext(ctx, root), "rollout "+id+" resumed", append(opts, attrs)...)
		return ctx, stored, func(err error) { endSpan(span, err) }
	}
	ctx, span := t.tracer.Start(ctx, "rollout "+id, attrs)
	var ref *TraceRef
	if sc := span.SpanContext(); sc.IsValid() {
		ref = &TraceRef{TraceID: sc.TraceID().String(), SpanID: sc.SpanID().String(), Sampled: sc.IsSampled()}
	}
	return ctx, ref, func(err error) { endSpan(span, err) }
}

// spanContext returns the remote span context ref names, if it is valid.
func (ref *TraceRef) spanContext() (trace.SpanContext, bool) {
	if ref == nil {
		return trace.SpanContext{}, false
	}
	tid, err1 := trace.TraceIDFromHex(ref.TraceID)
	sid, err2 := trace.SpanIDFromHex(ref.SpanID)
	if err1 != nil || err2 != nil {
		return trace.SpanContext{}, false
	}
	var flags trace.TraceFlags
	if ref.Sampled {
		flags = trace.FlagsSampled
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true})
	return sc, sc.IsValid()
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
