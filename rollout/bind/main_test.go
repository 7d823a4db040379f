package bind_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/internal/testchild"
)

// roleGraceful is a service built on graceful whose rollout is one
// blue-green step (graceful_test.go).
const roleGraceful = "graceful-service"

func TestMain(m *testing.M) {
	testchild.Main(m, func() int { goleak.VerifyTestMain(m); return 0 })
}
