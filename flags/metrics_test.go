package flags

import (
	"context"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestEvaluationMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	s, err := New(Options{MeterProvider: mp, Now: (&fakeClock{}).Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Set("code", Config{Flags: map[string]Flag{
		"f": {Variants: onOff, Default: "off", Rules: []Rule{{If: &Condition{Attr: "beta", Op: OpEquals, Value: true}, Serve: Serve{Variant: "on"}}}},
	}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.Bool("f", EvalContext{Attributes: map[string]any{"beta": true}}, false)
	}
	s.Bool("f", EvalContext{}, false)
	s.String("f", EvalContext{}, "")     // type mismatch
	s.Bool("nope", EvalContext{}, false) // not found
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != "baton.flags.evaluations" {
				continue
			}
			sum := m.Data.(metricdata.Sum[int64])
			if !sum.IsMonotonic || sum.Temporality != metricdata.CumulativeTemporality {
				t.Errorf("evaluations is not a cumulative counter")
			}
			for _, dp := range sum.DataPoints {
				key := ""
				for _, k := range []attribute.Key{"flag", "variant", "reason"} {
					v, _ := dp.Attributes.Value(k)
					key += v.AsString() + "/"
				}
				got[key] = dp.Value
			}
		}
	}
	want := map[string]int64{"f/on/TARGETING_MATCH/": 3, "f/off/DEFAULT/": 1, "f//ERROR/": 1, "//ERROR/": 1}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	if n := sumMetric(rm, "baton.flags.updates"); n != 1 {
		t.Errorf("updates = %d, want 1", n)
	}
}
