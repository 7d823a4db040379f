package migrate_test

import (
	"context"
	"math"
	"testing"

	"go.opentelemetry.io/otel/attribute"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/batonhq/baton/migrate"
)

func TestBackfillMetricsAndSpans(t *testing.T) {
	d := migrate.SQLite
	db := openDB(t, d)
	const table = "mt_otel_users"
	if _, err := db.Exec(usersDDL(d, table)); err != nil {
		t.Fatal(err)
	}
	seed(t, db, d, table, 700)
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())

	// Mid-backfill, after the third of seven batches, the gauges show the
	// share done and a time left. The batch size is pinned to 100 (a slow
	// batch on a loaded machine would otherwise shrink the next one).
	var midProgress, midETA float64
	var midAttrs attribute.Set
	var midErr error
	batch := 0
	onProgress := func(p migrate.Progress) {
		if batch++; batch != 3 {
			return
		}
		var rm metricdata.ResourceMetrics
		if midErr = reader.Collect(context.Background(), &rm); midErr == nil {
			midProgress, midAttrs = gauge(rm, "baton.migrate.backfill.progress")
			midETA, _ = gauge(rm, "baton.migrate.backfill.eta")
		}
	}
	r, err := migrate.New(db, splitName(d, table, "mt_otel"), migrate.Options{BatchSize: 100, MinBatchSize: 100, MaxBatchSize: 100, MeterProvider: mp, TracerProvider: tp, OnProgress: onProgress})
	if err != nil {
		t.Fatal(err)
	}
	ctx := boundedCtx(t)
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Backfill(ctx); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	var rows int64
	var batches uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				if m.Name == "baton.migrate.backfill.rows" {
					for _, p := range data.DataPoints {
						rows += p.Value
					}
				}
			case metricdata.Histogram[float64]:
				if m.Name == "baton.migrate.backfill.batch.duration" {
					for _, p := range data.DataPoints {
						batches += p.Count
					}
				}
			}
		}
	}
	if rows != 700 || batches < 7 {
		t.Fatalf("metrics: rows %d (want 700), batches %d (want >= 7)", rows, batches)
	}
	if midErr != nil {
		t.Fatal(midErr)
	}
	if want := 300.0 / 700; !(midProgress > want-0.01 && midProgress < want+0.01 && midETA > 0) { // NaN fails too
		t.Fatalf("after 3 of 7 batches: progress %v (want %.3f), eta %vs (want > 0)", midProgress, want, midETA)
	}
	if m, _ := midAttrs.Value("migration"); m.AsString() != "mt_otel" {
		t.Fatalf("progress attributes %v", midAttrs.ToSlice())
	}
	if tb, _ := midAttrs.Value("table"); tb.AsString() != table {
		t.Fatalf("progress attributes %v", midAttrs.ToSlice())
	}
	// The last values stay after the backfill: done, nothing left.
	if p, _ := gauge(rm, "baton.migrate.backfill.progress"); p != 1 {
		t.Fatalf("progress after Backfill %v, want 1", p)
	}
	if eta, attrs := gauge(rm, "baton.migrate.backfill.eta"); eta != 0 || attrs.Len() != 2 {
		t.Fatalf("eta after Backfill %v %v, want 0 with migration and table", eta, attrs.ToSlice())
	}
	names := map[string]int{}
	for _, s := range spans.Ended() {
		names[s.Name()]++
	}
	if names["migrate.Start"] != 1 || names["migrate.Backfill"] != 1 || names["migrate.ddl"] < 3 {
		t.Fatalf("spans: %v", names)
	}
}

// gauge returns the single data point of the float64 gauge called name
// (NaN if there is not exactly one).
func gauge(rm metricdata.ResourceMetrics, name string) (float64, attribute.Set) {
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if g, ok := m.Data.(metricdata.Gauge[float64]); ok && m.Name == name && len(g.DataPoints) == 1 {
				return g.DataPoints[0].Value, g.DataPoints[0].Attributes
			}
		}
	}
	return math.NaN(), attribute.Set{}
}
