//go:build race

package traffic_test

// raceEnabled trims the statistical simulations under the race detector,
// which checks concurrency, not statistics.
const raceEnabled = true
