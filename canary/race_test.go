//go:build race

package canary_test

// raceEnabled trims the statistical simulations under the race detector,
// which checks concurrency, not statistics: the full counts run without it
// (see .ci/run).
const raceEnabled = true
