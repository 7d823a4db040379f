package main

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/canary"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer collects a scenario's report for the test log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestScenarios runs the example's two rollouts, shortened (2 s steps,
// analyses every second): over a real socket the good v2 must be promoted
// and the bad one rolled back. alpha 0.001 bounds a false rollback of the
// good canary to one run in a thousand. The two run side by side.
func TestScenarios(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two real rollouts of several seconds each")
	}
	for _, tc := range []struct {
		name    string
		errs    float64
		latency time.Duration
		want    canary.Phase
	}{
		{"good", 0, 0, canary.PhaseSucceeded},
		{"bad", 0.03, 3 * time.Millisecond, canary.PhaseRolledBack},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var out syncBuffer
			cfg := config{rps: 300, stepFor: 2 * time.Second, interval: time.Second, alpha: 0.001, out: &out}
			ok := run(tc.name, tc.errs, tc.latency, cfg, tc.want)
			t.Log("\n" + out.String())
			if !ok {
				t.Fatalf("scenario %s did not end %s", tc.name, tc.want)
			}
		})
	}
}
