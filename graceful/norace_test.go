//go:build !race

package graceful_test

// raceEnabled: this test binary runs without the race detector.
const raceEnabled = false
