//go:build race

package openfeature_test

const raceEnabled = true
