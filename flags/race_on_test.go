//go:build race

package flags

const raceEnabled = true
