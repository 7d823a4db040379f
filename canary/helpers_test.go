package canary_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if role := upstreamRole(); role != "" {
		runUpstream(role)
		return
	}
	goleak.VerifyTestMain(m)
}

func contextWith(r *http.Request, key string) context.Context {
	return context.WithValue(r.Context(), ctxKey{}, key)
}

// awaitFor bounds every wait of these tests on a channel.
const awaitFor = 10 * time.Second

// await receives from ch, failing the test with what it waited for after
// awaitFor instead of hanging until the global go test timeout.
func await[T any](t testing.TB, ch chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(awaitFor):
		t.Fatalf("waited %s for %s", awaitFor, what)
	}
	var zero T
	return zero
}
