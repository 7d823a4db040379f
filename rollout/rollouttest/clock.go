package rollouttest

import (
	"context"
	"sync"
	"time"
)

// Clock is a fake rollout.Clock for tests: time moves only by Advance, and
// Waiters tells how many timers wait, so a test advances the clock exactly
// when the runner waits. The zero value is not usable; use NewClock.
type Clock struct {
	mu      sync.Mutex
	now     time.Time
	timers  []timer
	changed chan struct{}
}

type timer struct {
	at time.Time
	ch chan time.Time
}

// NewClock returns a Clock at start.
func NewClock(start time.Time) *Clock {
	return &Clock{now: start, changed: make(chan struct{})}
}

// Now implements rollout.Clock.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// After implements rollout.Clock.
func (c *Clock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- c.now
		return ch
	}
	c.timers = append(c.timers, timer{at: c.now.Add(d), ch: ch})
	close(c.changed)
	c.changed = make(chan struct{})
	return ch
}

// Advance moves the clock by d and fires the timers that are due.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.timers[:0]
	for _, t := range c.timers {
		if !t.at.After(c.now) {
			t.ch <- c.now
		} else {
			kept = append(kept, t)
		}
	}
	c.timers = kept
}

// Waiters returns how many timers have not fired.
func (c *Clock) Waiters() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// WaitForWaiters blocks until at least n timers wait, or ctx ends.
func (c *Clock) WaitForWaiters(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		k, ch := len(c.timers), c.changed
		c.mu.Unlock()
		if k >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// AdvanceWhenWaiting waits for a timer and advances the clock by d: the
// usual way to move a runner through a pause or an interval.
func (c *Clock) AdvanceWhenWaiting(ctx context.Context, d time.Duration) error {
	if err := c.WaitForWaiters(ctx, 1); err != nil {
		return err
	}
	c.Advance(d)
	return nil
}
