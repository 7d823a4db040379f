package graceful_test

import (
	"fmt"
	"os"
	"strings"
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
	if goodBin, err = testchild.Build(dir, "./internal/testserver", raceEnabled); err != nil {
		fmt.Fprintln(os.Stderr, err)
		_ = os.RemoveAll(dir)
		os.Exit(1)
	}
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		_ = os.RemoveAll(dir)
		os.Exit(code)
	}))
}

// raceReport is what a race-enabled binary prints on standard error when
// it finds a data race.
const raceReport = "WARNING: DATA RACE"

// checkNoRace fails t if the processes writing to the stderr file at path
// reported a data race.
func checkNoRace(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	if i := strings.Index(string(b), raceReport); i >= 0 {
		t.Errorf("a server process reported a data race:\n%s", tail(string(b[i:]), 80))
	}
}
