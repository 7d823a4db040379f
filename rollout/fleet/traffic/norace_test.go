//go:build !race

package traffic_test

const raceEnabled = false
