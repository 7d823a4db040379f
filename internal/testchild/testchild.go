package testchild

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// RoleEnv is the environment variable that carries a child's role.
const RoleEnv = "BATON_TEST_CHILD_ROLE"

// DefaultWait bounds every wait of the harness that is not given its own
// deadline.
const DefaultWait = 30 * time.Second

var (
	mu    sync.Mutex
	roles = map[string]func() int{}
)

// Register names a role of this test binary. fn runs in the child and
// returns its exit status. Registering a name twice panics.
func Register(name string, fn func() int) {
	mu.Lock()
	defer mu.Unlock()
	if _, dup := roles[name]; dup {
		panic("testchild: role " + name + " registered twice")
	}
	roles[name] = fn
}

// Role returns the role this process runs as, or "" in the parent.
func Role() string { return os.Getenv(RoleEnv) }

// Main runs the registered role and exits when this process is a child;
// otherwise it calls tests (usually a function that runs m through
// goleak.VerifyTestMain) and exits with its status. An unknown role exits
// with status 2 and says so on standard error.
func Main(m *testing.M, tests func() int) {
	if role := Role(); role != "" {
		mu.Lock()
		fn := roles[role]
		mu.Unlock()
		if fn == nil {
			fmt.Fprintf(os.Stderr, "testchild: no role %q in this test binary\n", role)
			os.Exit(2)
		}
		os.Exit(fn())
	}
	if tests == nil {
		os.Exit(m.Run())
	}
	os.Exit(tests())
}

// Command returns a command that re-executes this test binary in role,
// with the parent's environment plus env ("KEY=value"). The test functions
// do not run in the child (-test.run=^$).
func Command(ctx context.Context, role string, env ...string) (*exec.Cmd, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("testchild: finding the test binary: %w", err)
	}
	cmd := exec.CommandContext(ctx, exe, "-test.run=^$")
	cmd.Env = append(append(os.Environ(), RoleEnv+"="+role), env...)
	return cmd, nil
}

// Build compiles the Go package pkg (a path relative to the caller's
// package directory, such as "./internal/testserver") into dir and returns
// the binary's path. With race true it builds with -race, so that races in
// the child processes are found too.
func Build(dir, pkg string, race bool) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	args := []string{"build", "-o", out}
	if race {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, pkg)...)
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("testchild: go build %s: %w\n%s", pkg, err, stderr.String())
	}
	return out, nil
}

// Lines reads a child's output line by line in a goroutine of its own
// that ends when the reader does (at the child's exit, when its pipe
// closes).
type Lines struct {
	name  string
	lines chan string
	done  chan struct{}
	mu    sync.Mutex
	seen  []string
	err   error
}

// keptLines is how many of the last lines a failed wait quotes.
const keptLines = 20

// NewLines starts reading r; name says whose output it is in failures.
func NewLines(name string, r io.Reader) *Lines {
	l := &Lines{name: name, lines: make(chan string, 1024), done: make(chan struct{})}
	go func() {
		defer close(l.done)
		defer close(l.lines)
		sc := bufio.NewScanner(r)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			l.mu.Lock()
			l.seen = append(l.seen, line)
			if len(l.seen) > keptLines {
				l.seen = l.seen[len(l.seen)-keptLines:]
			}
			l.mu.Unlock()
			select {
			case l.lines <- line:
			default: // nobody waits for lines now; the tail is kept in seen
			}
		}
		l.mu.Lock()
		l.err = sc.Err()
		l.mu.Unlock()
	}()
	return l
}

// Done is closed when the output has ended.
func (l *Lines) Done() <-chan struct{} { return l.done }

// Await returns the first line, from now on, for which match is true. It
// fails t if the output ends or d passes first (DefaultWait when d is 0),
// naming what it waited for and quoting the last lines seen.
func (l *Lines) Await(t testing.TB, what string, d time.Duration, match func(line string) bool) string {
	t.Helper()
	if d <= 0 {
		d = DefaultWait
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case line, ok := <-l.lines:
			if !ok {
				t.Fatalf("%s: output ended while waiting for %s; last lines:\n%s", l.name, what, l.tail())
				return ""
			}
			if match(line) {
				return line
			}
		case <-timer.C:
			t.Fatalf("%s: waited %s for %s; last lines:\n%s", l.name, d, what, l.tail())
			return ""
		}
	}
}

// AwaitPrefix is Await for the first line that starts with prefix.
func (l *Lines) AwaitPrefix(t testing.TB, prefix string, d time.Duration) string {
	t.Helper()
	return l.Await(t, fmt.Sprintf("a line starting %q", prefix), d, func(s string) bool { return strings.HasPrefix(s, prefix) })
}

func (l *Lines) tail() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := strings.Join(l.seen, "\n")
	if l.err != nil {
		s += "\n(read error: " + l.err.Error() + ")"
	}
	return s
}

// Wait waits for cmd to exit, for at most d (DefaultWait when 0), and
// fails t naming the child if it does not. It returns cmd.Wait's error.
// The command must have been started and not yet waited for.
func Wait(t testing.TB, name string, cmd *exec.Cmd, d time.Duration) error {
	t.Helper()
	if d <= 0 {
		d = DefaultWait
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("%s (pid %d) did not exit within %s; killed", name, cmd.Process.Pid, d)
		return nil
	}
}

// Eventually calls cond every poll until it returns nil, and fails t with
// what and cond's last error if d passes first (DefaultWait when 0). It is
// for conditions that have no signal of their own to wait on (a process
// gone, a file written by another process); poll should be short.
func Eventually(t testing.TB, what string, d, poll time.Duration, cond func() error) {
	t.Helper()
	if d <= 0 {
		d = DefaultWait
	}
	if poll <= 0 {
		poll = 10 * time.Millisecond
	}
	deadline := time.Now().Add(d)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s: %v", d, what, err)
			return
		}
		<-tick.C
	}
}
