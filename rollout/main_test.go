package rollout_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/internal/testchild"
)

// Roles this test binary runs as a child (internal/testchild).
const (
	roleRunner   = "kill-runner" // a rollout runner killed with SIGKILL (child_test.go)
	rolePTRunner = "pt-runner"   // a runner whose ProcessTarget outlives it (target_process_test.go)
	roleServer   = "server"      // an instance a ProcessTarget starts (target_process_test.go)
)

func TestMain(m *testing.M) {
	testchild.Register(roleRunner, childMain)
	testchild.Main(m, func() int { goleak.VerifyTestMain(m); return 0 })
}
