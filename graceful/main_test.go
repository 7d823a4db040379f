package graceful_test

import (
	"fmt"
	"os"
	"runtime"
	"testing"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/internal/testchild"
)

// goodBin is testserver, built once for the whole package, with the race
// detector when this test binary has it: the upgrades under test happen in
// those processes, and their races would otherwise go unseen.
var goodBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "graceful-test-bin-*")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The tests that start processes run on Linux, where they can read
	// the process tree from /proc.
	if runtime.GOOS == "linux" {
		if goodBin, err = testchild.Build(dir, "./internal/testserver", raceEnabled); err != nil {
			fmt.Fprintln(os.Stderr, err)
			_ = os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}))
}
