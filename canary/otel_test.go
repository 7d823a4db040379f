package canary_test

import (
	"context"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

func TestOpenTelemetryExport(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	s := newSplitter(t, canary.Options{Stable: okHandler, Canary: okHandler, Weight: 2500,
		Key: canary.KeyOptions{Header: "X-User"}, MeterProvider: mp})
	for i := range 400 {
		s.ServeHTTP(httptest.NewRecorder(), keyed("u"+string(rune('a'+i%26))+string(rune('a'+i/26))))
	}
	s.Metrics().Record(canary.Canary, 3*time.Millisecond, true)
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	sums := map[string]map[string]int64{}
	gauges := map[string]bool{}
	hist := map[string]uint64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				sums[m.Name] = map[string]int64{}
				for _, p := range d.DataPoints {
					v, _ := p.Attributes.Value(attribute.Key("variant"))
					sums[m.Name][v.AsString()] = p.Value
				}
			case metricdata.Gauge[float64]:
				gauges[m.Name] = len(d.DataPoints) > 0
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					v, _ := p.Attributes.Value(attribute.Key("variant"))
					hist[v.AsString()] = p.Count
					if !slices.Equal(p.Bounds, canary.LatencyBuckets()) {
						t.Errorf("%s bounds %v, want LatencyBuckets", m.Name, p.Bounds)
					}
				}
			}
		}
	}
	req := sums[canary.MetricRequests]
	if req["stable"]+req["canary"] != 401 || req["canary"] == 0 || req["stable"] == 0 {
		t.Fatalf("requests by variant %v", req)
	}
	if e := sums[canary.MetricErrors]; e["canary"] != 1 || e["stable"] != 0 {
		t.Fatalf("errors by variant %v", e)
	}
	// The histogram counts what the splitter served, not what was
	// recorded into its Metrics by hand.
	if hist["stable"] != uint64(req["stable"]) || hist["canary"] != uint64(req["canary"])-1 {
		t.Errorf("%s counts %v, want the served requests of %v", canary.MetricLatency, hist, req)
	}
	for _, g := range []string{canary.MetricLatencyP50, canary.MetricLatencyP99, canary.MetricWeight} {
		if !gauges[g] {
			t.Errorf("gauge %s not exported", g)
		}
	}
}
