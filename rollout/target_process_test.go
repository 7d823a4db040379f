//go:build unix

package rollout_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout"
)

const (
	serverEnv  = "BATON_ROLLOUT_TEST_SERVER_VERSION" // the version to serve
	serverAddr = "BATON_ROLLOUT_TEST_ADDR_FILE"
	serverKid  = "BATON_ROLLOUT_TEST_SPAWN_PID_FILE" // start a grandchild, write its pid here
)

func init() {
	testchild.Register(rolePTRunner, ptRunnerMain)
	testchild.Register(roleServer, serverMain)
}

// serverCommand is the command of an instance serving version.
func serverCommand(env ...string) *exec.Cmd {
	cmd, err := testchild.Command(context.Background(), roleServer, env...)
	if err != nil {
		// os.Executable failed: the instance cannot start, and says so.
		return exec.Command("/nonexistent/test-binary: " + err.Error())
	}
	return cmd
}

// serverMain is a tiny service: it serves its version on /healthz (500 for
// version "sick"), exits at once with status 3 for version "crash", and
// stops on SIGTERM.
func serverMain() int {
	v := os.Getenv(serverEnv)
	if v == "crash" {
		return 3
	}
	if pidFile := os.Getenv(serverKid); pidFile != "" {
		// A service that starts a helper and does not stop it: only a
		// signal to the whole group reaches the helper.
		kid := serverCommand(serverEnv+"=helper", serverAddr+"="+pidFile+".addr", serverKid+"=")
		if err := kid.Start(); err != nil {
			return 1
		}
		if err := os.WriteFile(pidFile, []byte(strconv.Itoa(kid.Process.Pid)), 0o600); err != nil {
			return 1
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 1
	}
	path := os.Getenv(serverAddr)
	if err := os.WriteFile(path+".tmp", []byte(ln.Addr().String()), 0o600); err != nil {
		return 1
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		return 1
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if v == "sick" {
			http.Error(w, "sick", 500)
			return
		}
		io.WriteString(w, v)
	})}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	go func() { <-stop; srv.Close() }()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return 1
	}
	return 0
}

func processTargets(t *testing.T, n int) []*rollout.ProcessTarget {
	dir := t.TempDir()
	var ts []*rollout.ProcessTarget
	for i := range n {
		addrFile := filepath.Join(dir, fmt.Sprintf("p%d.addr", i))
		var pt *rollout.ProcessTarget
		var err error
		pt, err = rollout.NewProcessTarget(rollout.ProcessTargetOptions{
			Name: fmt.Sprintf("p%d", i),
			Command: func(version string) *exec.Cmd {
				os.Remove(addrFile) // the new process announces itself afresh
				return serverCommand(serverEnv+"="+version, serverAddr+"="+addrFile)
			},
			// Healthy when the process of the expected version answers.
			Health: func(ctx context.Context) error {
				addr, err := os.ReadFile(addrFile)
				if err != nil {
					return fmt.Errorf("not listening yet: %w", err)
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+string(addr)+"/healthz", nil)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 || string(b) != pt.Version() {
					return fmt.Errorf("answered %d %q, want version %s", resp.StatusCode, b, pt.Version())
				}
				return nil
			},
			StopTimeout: 10 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pt.Close() })
		ts = append(ts, pt)
	}
	return ts
}

// A rolling update of real child processes: v1 -> v2 succeeds batch by
// batch; v2 -> a version that crashes at start fails its first batch at
// once and rolls back to v2, leaving every process serving v2.
func TestRollingLocalProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	pts := processTargets(t, 3)
	var targets []rollout.Target
	for _, p := range pts {
		targets = append(targets, p)
	}
	store := mustFileStore(t, t.TempDir())
	o := rollout.RollingOptions{MaxUnavailable: 2, HealthTimeout: 30 * time.Second, HealthInterval: 20 * time.Millisecond}
	run := func(id, to, from string) error {
		steps, err := rollout.Rolling(targets, to, from, o)
		if err != nil {
			t.Fatal(err)
		}
		r, err := rollout.New(context.Background(), rollout.Plan{ID: id, Steps: steps}, rollout.Options{Store: store})
		if err != nil {
			t.Fatal(err)
		}
		err = runBounded(t, r)
		if err != nil {
			t.Logf("%s: %s", id, r.Status().Reason)
		}
		return err
	}
	if err := run("to-v1", "v1", "none"); err != nil {
		t.Fatal(err)
	}
	if err := run("to-v2", "v2", "v1"); err != nil {
		t.Fatal(err)
	}
	for _, p := range pts {
		if p.Version() != "v2" {
			t.Fatalf("%s runs %q", p.Name(), p.Version())
		}
	}
	err := run("to-crash", "crash", "v2")
	wantErrIs(t, err, rollout.ErrRolledBack)
	for _, p := range pts {
		if p.Version() != "v2" || p.Healthy(context.Background()) != nil {
			t.Fatalf("%s after rollback: %q %v", p.Name(), p.Version(), p.Healthy(context.Background()))
		}
	}
}

const (
	ptRunnerDir = "BATON_ROLLOUT_TEST_PT_DIR" // the StateDir of the runner child
)

// ptOptions are the options of target "p0" serving from dir, as the test
// and its runner child both build them.
func ptOptions(dir string, version func() string) rollout.ProcessTargetOptions {
	addrFile := filepath.Join(dir, "p0.addr")
	return rollout.ProcessTargetOptions{
		Name:     "p0",
		StateDir: dir,
		Command: func(v string) *exec.Cmd {
			os.Remove(addrFile)
			return serverCommand(serverEnv+"="+v, serverAddr+"="+addrFile)
		},
		Health: func(ctx context.Context) error {
			addr, err := os.ReadFile(addrFile)
			if err != nil {
				return fmt.Errorf("not listening yet: %w", err)
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+string(addr)+"/healthz", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(b) != version() {
				return fmt.Errorf("answered %d %q, want version %s", resp.StatusCode, b, version())
			}
			return nil
		},
		StopTimeout: 10 * time.Second,
	}
}

// ptRunnerMain is a rollout runner that replaces p0 with v1, waits until
// it is healthy, says so and waits for its SIGKILL.
func ptRunnerMain() int {
	var pt *rollout.ProcessTarget
	var err error
	pt, err = rollout.NewProcessTarget(ptOptions(os.Getenv(ptRunnerDir), func() string { return pt.Version() }))
	if err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	ctx := context.Background()
	if err := pt.Replace(ctx, "v1"); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	for pt.Healthy(ctx) != nil {
		select {
		case <-time.After(10 * time.Millisecond): // polling a child's port: there is nothing to wait on
		case <-ctx.Done():
		}
	}
	fmt.Printf("READY %d\n", pt.PID())
	select {} // SIGKILL ends it
}

// A runner killed with SIGKILL leaves its instance serving; the next
// runner adopts it from the PID file, and its Replace stops it instead of
// starting a second instance beside the orphan.
func TestProcessTargetAdoptsInstanceOfKilledRunner(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute) // only stops a hung child
	defer cancel()
	runner, err := testchild.Command(cctx, rolePTRunner, ptRunnerDir+"="+dir)
	if err != nil {
		t.Fatal(err)
	}
	runner.Stderr = os.Stderr
	out, err := runner.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := runner.Start(); err != nil {
		t.Fatal(err)
	}
	line := testchild.NewLines("runner", out).Await(t, "the runner's instance to be healthy (READY)", 0, func(l string) bool {
		return strings.HasPrefix(l, "READY ") || strings.HasPrefix(l, "ERROR")
	})
	var orphan int
	if _, err := fmt.Sscanf(line, "READY %d", &orphan); err != nil || orphan <= 0 {
		runner.Process.Kill()
		testchild.Wait(t, "runner", runner, 0)
		t.Fatalf("runner said %q", line)
	}
	// Whatever happens below, the instance does not outlive the test.
	t.Cleanup(func() { syscall.Kill(-orphan, syscall.SIGKILL) })
	if err := runner.Process.Signal(os.Kill); err != nil {
		t.Fatal(err)
	}
	testchild.Wait(t, "runner", runner, 0)
	if testchild.Gone(orphan) {
		t.Fatal("the instance died with its runner; the test proves nothing")
	}

	var pt *rollout.ProcessTarget
	pt, err = rollout.NewProcessTarget(ptOptions(dir, func() string { return pt.Version() }))
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	if pt.Version() != "v1" || pt.PID() != orphan {
		t.Fatalf("resumed target runs %q as %d; want the orphan %d running v1", pt.Version(), pt.PID(), orphan)
	}
	ctx := context.Background()
	if err := pt.Healthy(ctx); err != nil {
		t.Fatalf("adopted instance: %v", err)
	}
	if err := pt.Replace(ctx, "v2"); err != nil {
		t.Fatal(err)
	}
	if !testchild.Gone(orphan) {
		t.Fatalf("the orphan %d still runs beside the new instance %d", orphan, pt.PID())
	}
	if pt.PID() == orphan || pt.Version() != "v2" {
		t.Fatalf("after Replace: %q as %d", pt.Version(), pt.PID())
	}
	fresh := pt.PID()
	testchild.Eventually(t, "v2 to be healthy", 0, 0, func() error { return pt.Healthy(ctx) })
	if err := pt.Close(); err != nil {
		t.Fatal(err)
	}
	if !testchild.Gone(fresh) {
		t.Fatalf("instance %d runs after Close", fresh)
	}
	if _, err := os.Stat(filepath.Join(dir, "p0.pid.json")); !os.IsNotExist(err) {
		t.Fatalf("PID file left after Close: %v", err)
	}
	// A later target finds nothing to adopt.
	again, err := rollout.NewProcessTarget(ptOptions(dir, func() string { return "" }))
	if err != nil {
		t.Fatal(err)
	}
	if again.PID() != 0 || again.Version() != "" {
		t.Fatalf("adopted %d (%q) after Close", again.PID(), again.Version())
	}
}

// Stopping an instance stops its whole process group: a helper process
// the service started and never stops goes with it.
func TestProcessTargetStopsProcessGroup(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	kidFile := filepath.Join(dir, "helper.pid")
	var pt *rollout.ProcessTarget
	o := ptOptions(dir, func() string { return pt.Version() })
	command := o.Command
	o.Command = func(v string) *exec.Cmd {
		cmd := command(v)
		cmd.Env = append(cmd.Env, serverKid+"="+kidFile)
		return cmd
	}
	var err error
	pt, err = rollout.NewProcessTarget(o)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute) // only stops a hang
	defer cancel()
	if err := pt.Replace(ctx, "v1"); err != nil {
		t.Fatal(err)
	}
	// The pid file is written before the port is bound.
	testchild.Eventually(t, "v1 to be healthy", 0, 0, func() error { return pt.Healthy(ctx) })
	b, err := os.ReadFile(kidFile)
	if err != nil {
		t.Fatal(err)
	}
	kid, err := strconv.Atoi(string(b))
	if err != nil || kid <= 0 {
		t.Fatalf("helper pid %q", b)
	}
	t.Cleanup(func() { syscall.Kill(kid, syscall.SIGKILL) })
	if testchild.Gone(kid) {
		t.Fatal("the helper is not running; the test proves nothing")
	}
	if err := pt.Close(); err != nil {
		t.Fatal(err)
	}
	// The signals are sent; the helper dies when it is scheduled.
	testchild.Eventually(t, fmt.Sprintf("helper %d to exit after the instance was stopped", kid), 0, 0, func() error {
		if !testchild.Gone(kid) {
			return errors.New("still running")
		}
		return nil
	})
}

// procStart reads a process's start time as ProcessTarget records it
// (field 22 of /proc/<pid>/stat), "" without /proc.
func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return f[19]
}

// A PID file decides which process group the next Replace kills: one
// without a start time (it names whatever reuses the pid), one another
// user may write, or one that is a symlink is refused, and the process it
// names is left alone.
func TestProcessTargetRefusesUntrustedPIDFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	victim := serverCommand(serverEnv+"=victim", serverAddr+"="+filepath.Join(dir, "victim.addr"))
	victim.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-victim.Process.Pid, syscall.SIGKILL)
		testchild.Wait(t, "victim", victim, 0)
	})
	pid := victim.Process.Pid
	pidPath := filepath.Join(dir, "p0.pid.json")
	write := func(doc string, mode os.FileMode) {
		t.Helper()
		os.Remove(pidPath)
		if err := os.WriteFile(pidPath, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(pidPath, mode); err != nil {
			t.Fatal(err)
		}
	}
	open := func() (*rollout.ProcessTarget, error) {
		return rollout.NewProcessTarget(ptOptions(dir, func() string { return "" }))
	}
	start := procStart(pid)
	withStart := fmt.Sprintf(`{"pid":%d,"start":%q,"version":"v1"}`, pid, start)
	type attempt struct {
		name, want string
		plant      func()
	}
	attempts := []attempt{
		{"world-writable", "writable by its group or others", func() { write(withStart, 0o666) }},
		{"symlink", "PID file", func() {
			os.Remove(pidPath)
			other := filepath.Join(t.TempDir(), "pid.json")
			if err := os.WriteFile(other, []byte(withStart), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(other, pidPath); err != nil {
				t.Fatal(err)
			}
		}},
	}
	if start != "" {
		attempts = append(attempts, attempt{"no start time", "no start time", func() { write(fmt.Sprintf(`{"pid":%d,"version":"v1"}`, pid), 0o600) }})
	}
	if os.Geteuid() == 0 {
		attempts = append(attempts, attempt{"another user's", "belongs to uid 4242", func() {
			write(withStart, 0o600)
			if err := os.Chown(pidPath, 4242, 4242); err != nil {
				t.Fatal(err)
			}
		}})
	}
	for _, a := range attempts {
		a.plant()
		pt, err := open()
		if err == nil {
			pt.Close()
			t.Fatalf("%s PID file: adopted process %d", a.name, pt.PID())
		}
		if !strings.Contains(err.Error(), a.want) {
			t.Errorf("%s PID file: %v, want %q", a.name, err, a.want)
		}
		if testchild.Gone(pid) {
			t.Fatalf("%s PID file: the process it names was stopped", a.name)
		}
	}
	// The control: the same file, private and with its start time, is
	// adopted.
	write(withStart, 0o600)
	pt, err := open()
	if err != nil {
		t.Fatalf("a trusted PID file: %v", err)
	}
	if pt.PID() != pid || pt.Version() != "v1" {
		t.Fatalf("a trusted PID file: adopted %d (%q), want %d (v1)", pt.PID(), pt.Version(), pid)
	}
}
