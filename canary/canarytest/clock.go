// Package canarytest is test support for code that uses canary: a manual
// clock for deterministic simulations of a rollout.
package canarytest

import (
	"sync/atomic"
	"time"
)

// Epoch is the time a zero Clock reads.
var Epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// Clock is a manual clock that satisfies canary.Clock. Its zero value reads
// Epoch until it is set or advanced. It is safe for concurrent use and
// lock-free, so that simulations recording millions of outcomes stay fast.
type Clock struct {
	offset atomic.Int64 // nanoseconds since Epoch
}

// NewClock returns a clock that reads t.
func NewClock(t time.Time) *Clock {
	c := &Clock{}
	c.Set(t)
	return c
}

// Now returns the clock's current time.
func (c *Clock) Now() time.Time { return Epoch.Add(time.Duration(c.offset.Load())) }

// Advance moves the clock forward by d (backwards if d is negative) and
// returns the new time.
func (c *Clock) Advance(d time.Duration) time.Time {
	return Epoch.Add(time.Duration(c.offset.Add(int64(d))))
}

// Set moves the clock to t, which must lie within 292 years of Epoch.
func (c *Clock) Set(t time.Time) { c.offset.Store(int64(t.Sub(Epoch))) }
