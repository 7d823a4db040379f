package rollout

import "time"

// Clock is the time source of a Rollout: pauses, bake windows, analysis
// intervals and step timings use it, so tests can drive them with a fake
// clock (rollouttest.Clock). The zero Options use the system clock.
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has elapsed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SystemClock is the Clock used when Options.Clock is nil.
var SystemClock Clock = systemClock{}
