package migrate_test

import (
	"context"
	"testing"

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

	r, err := migrate.New(db, splitName(d, table, "mt_otel"), migrate.Options{BatchSize: 100, MaxBatchSize: 100, MeterProvider: mp, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
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
	names := map[string]int{}
	for _, s := range spans.Ended() {
		names[s.Name()]++
	}
	if names["migrate.Start"] != 1 || names["migrate.Backfill"] != 1 || names["migrate.ddl"] < 3 {
		t.Fatalf("spans: %v", names)
	}
}
