package promanalysis_test

import (
	"fmt"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/promanalysis"
)

// A canary step judged from Prometheus: the service's instances export
// canary's metrics (canary.Options.MeterProvider with the OpenTelemetry
// Prometheus exporter), Prometheus scrapes them, and the analysis step
// asks it. Labels select the service; the defaults read canary's metric
// names.
func Example() {
	a, err := promanalysis.New(promanalysis.Options{
		Address:      "http://127.0.0.1:9090",
		Labels:       map[string]string{"job": "checkout"},
		Step:         30 * time.Second, // at least twice the scrape interval
		MaxErrorRate: 0.05,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	step := rollout.Analyze(a, rollout.AnalysisOptions{Count: 5, Interval: time.Minute})
	_ = step // a step of the rollout's plan
	fmt.Println("analyzer ready")
	// Output: analyzer ready
}
