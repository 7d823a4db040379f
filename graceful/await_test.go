package graceful_test

import (
	"context"
	"testing"
	"time"

	"github.com/batonhq/baton/graceful"
)

// testWait bounds each wait of the in-process tests: a planted hang fails
// the test within it, naming what the test waited for, instead of running
// into the go test timeout.
const testWait = 20 * time.Second

// recv returns the next value from ch, or fails t after testWait naming
// what it waited for.
func recv[T any](t testing.TB, what string, ch <-chan T) T {
	t.Helper()
	timer := time.NewTimer(testWait)
	defer timer.Stop()
	select {
	case v := <-ch:
		return v
	case <-timer.C:
		t.Fatalf("waited %s for %s", testWait, what)
	}
	var zero T
	return zero
}

// shutdown drains u, failing t if the drain has not ended within
// testWait (Shutdown then closes everything and returns).
func shutdown(t testing.TB, u *graceful.Upgrader) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := u.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v; the drain did not end within %s", err, testWait)
	}
}

// readDeadline bounds the next reads of a raw connection.
func readDeadline(c interface{ SetReadDeadline(time.Time) error }) {
	_ = c.SetReadDeadline(time.Now().Add(testWait))
}
