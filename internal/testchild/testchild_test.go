package testchild_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/batonhq/baton/internal/testchild"
)

func TestMain(m *testing.M) {
	testchild.Register("echo", func() int {
		fmt.Println("ready", os.Getenv("WORD"))
		return 3
	})
	testchild.Main(m, func() int { goleak.VerifyTestMain(m); return 0 })
}

func TestRoleRunsInChild(t *testing.T) {
	cmd, err := testchild.Command(context.Background(), "echo", "WORD=hello")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := testchild.NewLines("echo child", out)
	if got := lines.AwaitPrefix(t, "ready", 0); got != "ready hello" {
		t.Fatalf("child said %q, want %q", got, "ready hello")
	}
	<-lines.Done()
	err = testchild.Wait(t, "echo child", cmd, 0)
	if cmd.ProcessState.ExitCode() != 3 {
		t.Fatalf("child exited with %v, want status 3 from its role", err)
	}
}

func TestUnknownRoleExits2(t *testing.T) {
	cmd, err := testchild.Command(context.Background(), "nope")
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), `no role "nope"`) {
		t.Fatalf("unknown role: exit %d, %v, output %q", cmd.ProcessState.ExitCode(), err, out)
	}
}

// recorder is a testing.TB that records a Fatalf instead of stopping the
// test, so the harness's own failures can be checked.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
}

func TestAwaitFailsNamingWhatItWaitedFor(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	lines := testchild.NewLines("silent child", pr)
	fmt.Fprintln(pw, "starting")
	rec := &recorder{TB: t}
	lines.AwaitPrefix(rec, "ready", 50*time.Millisecond)
	if !strings.Contains(rec.msg, `silent child: waited 50ms for a line starting "ready"`) || !strings.Contains(rec.msg, "starting") {
		t.Fatalf("timeout message %q does not name the child, the wait and the last line", rec.msg)
	}
	pw.Close()
	rec.msg = ""
	lines.AwaitPrefix(rec, "ready", time.Minute)
	if !strings.Contains(rec.msg, "output ended while waiting") {
		t.Fatalf("end-of-output message %q", rec.msg)
	}
	<-lines.Done()
}

func TestEventuallyFailsWithLastError(t *testing.T) {
	rec := &recorder{TB: t}
	n := 0
	testchild.Eventually(rec, "the file", 30*time.Millisecond, time.Millisecond, func() error {
		n++
		return fmt.Errorf("attempt %d: not there", n)
	})
	if !strings.Contains(rec.msg, "waited 30ms for the file") || !strings.Contains(rec.msg, "not there") {
		t.Fatalf("message %q", rec.msg)
	}
	rec.msg = ""
	testchild.Eventually(rec, "ok", time.Second, time.Millisecond, func() error { return nil })
	if rec.msg != "" {
		t.Fatalf("a condition that holds failed: %s", rec.msg)
	}
}
