//go:build race

package graceful_test

// raceEnabled: this test binary runs under the race detector, so the
// processes it upgrades are built with it too.
const raceEnabled = true
