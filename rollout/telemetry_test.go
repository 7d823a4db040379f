package rollout_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

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
	for _, n := range []string{"run 00-set-weight", "run 01-analyze", "rollback 01-analyze", "rollback 00-set-weight"} {
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
