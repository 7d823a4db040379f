package flags

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// suiteDeadline bounds the package's tests (about 12 s with the race
// detector), so that a test waiting for something that never happens
// fails within a minute, with every goroutine's stack, rather than at go
// test's 10-minute timeout. Every wait also has its own deadline; this
// catches a wait that was missed, such as an update deadlocked on the
// Store's lock.
const suiteDeadline = 60 * time.Second

func TestMain(m *testing.M) {
	flag.Parse()
	if flag.Lookup("test.bench").Value.String() == "" && flag.Lookup("test.fuzz").Value.String() == "" {
		time.AfterFunc(suiteDeadline, func() {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			fmt.Fprintf(os.Stderr, "FAIL: flags tests still running after %v: a test waits for something that will not happen\n\n%s\n", suiteDeadline, buf)
			os.Exit(2)
		})
	}
	goleak.VerifyTestMain(m)
}
