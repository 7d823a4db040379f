package traffic_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/internal/testchild"
)

func TestMain(m *testing.M) {
	testchild.Main(m, func() int { goleak.VerifyTestMain(m); return 0 })
}
