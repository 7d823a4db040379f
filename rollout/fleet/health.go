package fleet

import (
	"context"
	"sync"
	"time"
)

// Health is what an instance knows of its link to the engine. The zero
// value is a fresh instance that has not reached the engine yet (stale).
type Health struct {
	// Reachable: the last probe of the engine answered.
	Reachable bool `json:"reachable"`
	// Registered: this instance's membership lease is live.
	Registered bool `json:"registered"`
	// Since is when the current condition (stale or fresh) began.
	Since time.Time `json:"since,omitzero"`
	// LastContact is when the engine last answered a probe.
	LastContact time.Time `json:"lastContact,omitzero"`
	// Err is the last probe's or registration's error, "" when fresh.
	Err string `json:"error,omitempty"`
}

// Stale reports whether the instance may be behind the fleet: the engine
// does not answer, or its membership lapsed. A stale instance keeps
// serving what it last applied and catches up when the engine is back.
func (h Health) Stale() bool { return !h.Reachable || !h.Registered }

// healthState is the member's Health with a change broadcast.
type healthState struct {
	mu      sync.Mutex
	h       Health
	changed chan struct{}
}

func newHealthState() *healthState {
	return &healthState{h: Health{Since: time.Now()}, changed: make(chan struct{})}
}

func (s *healthState) get() (Health, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.h, s.changed
}

// update applies f and, when staleness flipped, reports the old value.
func (s *healthState) update(f func(*Health)) (before, after Health) {
	s.mu.Lock()
	defer s.mu.Unlock()
	before = s.h
	f(&s.h)
	if s.h.Stale() != before.Stale() {
		s.h.Since = time.Now()
	}
	if s.h != before {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	return before, s.h
}

// awaitFresh blocks until the instance is not stale or ctx ends.
func (s *healthState) awaitFresh(ctx context.Context) error {
	for {
		h, ch := s.get()
		if !h.Stale() {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
