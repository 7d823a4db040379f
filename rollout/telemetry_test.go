package rollout_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/batonhq/baton/rollout"
)

func TestTraceMetricsAndLogs(t *testing.T) {
	e := newEnv(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	var logs bytes.Buffer
	e.a.SetVerdicts(rollout.Fail)
	r, err := rollout.New(context.Background(), rollout.Plan{ID: "otel", Steps: []rollout.Step{
		rollout.SetWeight(e.w, 100),
		rollout.Analyze(e.a, rollout.AnalysisOptions{}),
	}}, rollout.Options{Store: e.store, Clock: e.clock, TracerProvider: tp, MeterProvider: mp, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	wantErrIs(t, r.Run(context.Background()), rollout.ErrRolledBack)

	ended := spans.Ended()
	names := map[string]string{}
	var root string
	for _, s := range ended {
		names[s.Name()] = s.Parent().SpanID().String()
		if s.Name() == "rollout otel" {
			root = s.SpanContext().SpanID().String()
		}
	}
	for _, n := range []string{"run set-weight-100", "run analyze", "rollback analyze", "rollback set-weight-100"} {
		if p, ok := names[n]; !ok || p != root {
			t.Errorf("span %q missing or not under the rollout span (have %v)", n, names)
		}
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "baton.rollout.steps" {
				continue
			}
			for _, dp := range m.Data.(metricdata.Sum[int64]).DataPoints {
				k, _ := dp.Attributes.Value("kind")
				o, _ := dp.Attributes.Value("outcome")
				outcomes[k.AsString()+"/"+o.AsString()] += dp.Value
			}
		}
	}
	want := map[string]int64{"set-weight/succeeded": 1, "analyze/failed": 1, "analyze/rolled-back": 1, "set-weight/rolled-back": 1}
	for k, v := range want {
		if outcomes[k] != v {
			t.Errorf("metric %s = %d, want %d (all: %v)", k, outcomes[k], v, outcomes)
		}
	}
	for _, l := range []string{"rollout step failed", "rolling back: step", "rollout decision"} {
		if !strings.Contains(logs.String(), l) {
			t.Errorf("log lacks %q:\n%s", l, logs.String())
		}
	}
}

// A rollout interrupted and resumed by another runner (another process,
// with its own TracerProvider) stays one trace: the first Run stores its
// root span in the state and the resumed Run's span is its child.
func TestTraceContinuesAcrossRestart(t *testing.T) {
	e := newEnv(t)
	plan := func() rollout.Plan {
		return rollout.Plan{ID: "otel-resume", Steps: []rollout.Step{
			rollout.SetWeight(e.w, 100),
			rollout.Pause(time.Minute).Named("hold"),
			rollout.SetWeight(e.w, 200),
		}}
	}
	first := tracetest.NewInMemoryExporter()
	tp1 := sdktrace.NewTracerProvider(sdktrace.WithSyncer(first))
	r1, err := rollout.New(context.Background(), plan(), rollout.Options{Store: e.store, Clock: e.clock, TracerProvider: tp1})
	if err != nil {
		t.Fatal(err)
	}
	wait, stop := start(t, r1)
	waitFor(t, r1, "hold waiting", stepWaiting("hold"))
	stop() // the runner goes away in the middle of the pause
	wantErrIs(t, wait(), context.Canceled)
	var root tracetest.SpanStub
	for _, s := range first.GetSpans() {
		if s.Name == "rollout otel-resume" {
			root = s
		}
	}
	if !root.SpanContext.IsValid() {
		t.Fatalf("no root span in the first runner: %v", first.GetSpans())
	}

	// The second runner knows the trace only from the store.
	second := tracetest.NewInMemoryExporter()
	tp2 := sdktrace.NewTracerProvider(sdktrace.WithSyncer(second))
	r2, err := rollout.New(context.Background(), plan(), rollout.Options{Store: e.store, Clock: e.clock, TracerProvider: tp2})
	if err != nil {
		t.Fatal(err)
	}
	if ref := r2.Status().Trace; ref == nil || ref.TraceID != root.SpanContext.TraceID().String() || ref.SpanID != root.SpanContext.SpanID().String() {
		t.Fatalf("stored trace %+v, want the first runner's root %s/%s", ref, root.SpanContext.TraceID(), root.SpanContext.SpanID())
	}
	if err := e.run(r2, time.Minute); err != nil {
		t.Fatal(err)
	}
	spans := second.GetSpans()
	var resumed tracetest.SpanStub
	for _, s := range spans {
		if s.SpanContext.TraceID() != root.SpanContext.TraceID() {
			t.Errorf("span %q is in trace %s, not the rollout's %s", s.Name, s.SpanContext.TraceID(), root.SpanContext.TraceID())
		}
		if s.Name == "rollout otel-resume resumed" {
			resumed = s
		}
	}
	if !resumed.SpanContext.IsValid() || resumed.Parent.SpanID() != root.SpanContext.SpanID() || !resumed.Parent.IsRemote() {
		t.Fatalf("resumed run span %q has parent %v, want the stored root %s", resumed.Name, resumed.Parent.SpanID(), root.SpanContext.SpanID())
	}
	for _, n := range []string{"run hold", "run set-weight-200"} {
		found := false
		for _, s := range spans {
			if s.Name == n && s.Parent.SpanID() == resumed.SpanContext.SpanID() {
				found = true
			}
		}
		if !found {
			t.Errorf("no span %q under the resumed run", n)
		}
	}
}
