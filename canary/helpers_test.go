package canary_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/internal/testchild"
)

func TestMain(m *testing.M) {
	testchild.Register("upstream", runUpstream)
	testchild.Main(m, func() int { goleak.VerifyTestMain(m); return 0 })
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
