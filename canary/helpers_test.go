package canary_test

import (
	"context"
	"net/http"
	"testing"

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
