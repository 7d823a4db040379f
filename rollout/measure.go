package rollout

import (
	"context"
	"time"
)

// Measurement is what one analysis measured: the canary against the
// stable variant over one window. It is recorded with the analysis's
// decision (Decision.Measurement), so that the console can chart error
// rates and latencies per window. The zero value is a window with no
// traffic.
type Measurement struct {
	// WindowStart and WindowEnd are the span measured; zero when the
	// analyzer does not know it.
	WindowStart time.Time `json:"windowStart,omitzero"`
	WindowEnd   time.Time `json:"windowEnd,omitzero"`
	// Weight is the canary weight in basis points during the window.
	Weight uint32  `json:"weight"`
	Canary Figures `json:"canary"`
	Stable Figures `json:"stable"`
}

// Figures summarise one variant over a window. The zero value means no
// traffic.
type Figures struct {
	Requests  uint64  `json:"requests"`
	Errors    uint64  `json:"errors"`
	ErrorRate float64 `json:"errorRate"` // 0..1
	// P50Seconds and P99Seconds are latency quantiles, in seconds.
	P50Seconds float64 `json:"p50Seconds"`
	P99Seconds float64 `json:"p99Seconds"`
}

// MeasuredAnalyzer is an optional interface of an Analyzer that also
// reports what it measured. An analysis calls AnalyzeMeasured instead of
// Analyze when the Analyzer has it; a nil Measurement records none.
type MeasuredAnalyzer interface {
	AnalyzeMeasured(ctx context.Context) (v Verdict, reason string, m *Measurement, err error)
}

// BackfillProgress is how far a migration's backfill has come. The zero
// value is a backfill that has not reported yet.
type BackfillProgress struct {
	// Rows is how many rows the backfill has visited so far.
	Rows int64 `json:"rows"`
	// Total is the number of rows to visit, 0 when unknown.
	Total int64 `json:"total,omitempty"`
	// Fraction is the share done, 0..1.
	Fraction float64 `json:"fraction"`
	// RowsPerSecond is the current rate, 0 when unknown.
	RowsPerSecond float64 `json:"rowsPerSecond,omitempty"`
	// ETASeconds estimates the time left, 0 when unknown.
	ETASeconds float64 `json:"etaSeconds,omitempty"`
}

// BackfillReporter is an optional interface of a MigrationPhaser that
// knows how far the backfill of migration name has come (with migrate:
// from migrate.Options.OnProgress). The console shows it on the running
// backfill step; ok false shows nothing. It is called from the admin
// API's goroutines while Backfill runs, so it must be safe for concurrent
// use.
type BackfillReporter interface {
	BackfillProgress(name string) (p BackfillProgress, ok bool)
}

// FleetView lists the hosts of a service for the console's fleet page.
// A fleet implements it with the desired and observed state of each
// instance; HandlerOptions.Fleet nil shows this process alone.
type FleetView interface {
	Hosts(ctx context.Context) ([]Host, error)
}

// Host is one instance of the service as the fleet page shows it. The
// zero value is a host with no name and nothing known.
type Host struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// State is what the host reports in words ("serving", "upgrading",
	// "stale: engine unreachable").
	State string `json:"state,omitempty"`
	// Weight is the canary weight in basis points the host applied, nil
	// when unknown.
	Weight *uint32 `json:"weight,omitempty"`
	// FlagVersion is the version of the flag document the host applied,
	// empty when unknown.
	FlagVersion string `json:"flagVersion,omitempty"`
	// Stale is set when the host's report is older than the fleet
	// expects (it lost the engine or stopped).
	Stale bool `json:"stale,omitempty"`
	// Self marks the process serving the page.
	Self bool `json:"self,omitempty"`
	// SeenAt is when the host last reported, zero when unknown.
	SeenAt time.Time `json:"seenAt,omitzero"`
}
