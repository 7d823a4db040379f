//go:build unix

package bind_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/internal/testchild"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/bind"
)

// The role runs processes and signals them, as only Unix can.
func init() {
	testchild.Register(roleGraceful, gracefulMain)
}

// The Upgrader tests re-execute the test binary as a service built
// on graceful (gracefulMain) whose rollout is one blue-green step from v1
// to v2. graceful upgrades re-execute the same binary with the same
// arguments, so the version a process runs is read from a file that the
// upgrade step writes before the handoff, as a deploy installs a binary.

const gracefulDir = "BATON_BIND_TEST_GRACEFUL_DIR" // the service's directory

// versionUpgrader installs version to (the version file), then hands off.
type versionUpgrader struct {
	*bind.Upgrader
	dir, to string
}

func (u versionUpgrader) UpgradeTo(ctx context.Context, spec rollout.UpgradeSpec) error {
	if err := os.WriteFile(filepath.Join(u.dir, "version"), []byte(u.to), 0o600); err != nil {
		return err
	}
	return u.Upgrader.UpgradeTo(ctx, spec)
}

// fileAnalyzer fails while its file exists.
type fileAnalyzer string

func (f fileAnalyzer) Analyze(ctx context.Context) (rollout.Verdict, string, error) {
	if _, err := os.Stat(string(f)); err == nil {
		return rollout.Fail, "fault file present", nil
	}
	return rollout.Pass, "no fault file", nil
}

func gracefulMain() int {
	dir := os.Getenv(gracefulDir)
	b, _ := os.ReadFile(filepath.Join(dir, "version"))
	version := strings.TrimSpace(string(b))
	pid := os.Getpid()
	note := func(format string, args ...any) {
		f, err := os.OpenFile(filepath.Join(dir, "log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
		if err == nil {
			fmt.Fprintf(f, "%s %d "+format+"\n", append([]any{version, pid}, args...)...)
			f.Close()
		}
	}
	ctx := context.Background()
	upg, err := graceful.New(graceful.Options{BakeWindow: time.Minute, DrainTimeout: 5 * time.Second, PIDFile: filepath.Join(dir, "pid")})
	if err != nil {
		note("new: %v", err)
		return 1
	}
	ln, err := upg.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		note("listen: %v", err)
		return 1
	}
	if !upg.HasParent() {
		_ = os.WriteFile(filepath.Join(dir, "addr.tmp"), []byte(ln.Addr().String()), 0o600)
		_ = os.Rename(filepath.Join(dir, "addr.tmp"), filepath.Join(dir, "addr"))
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %d", version, pid)
	})}
	upg.HTTP(srv)
	go srv.Serve(ln)
	if err := upg.Ready(ctx); err != nil {
		note("ready: %v", err)
		return 1
	}
	note("serving")
	store, err := rollout.NewFileStore(rollout.FileStoreOptions{Dir: filepath.Join(dir, "state")})
	if err != nil {
		note("store: %v", err)
		return 1
	}
	ga := bind.NewUpgrader(upg, bind.UpgraderOptions{})
	// The process exits only once its rollout goroutine has returned, so
	// that what the goroutine learns after the handoff is always logged.
	driven := make(chan struct{})
	go func() {
		defer close(driven)
		for {
			plan := rollout.Plan{ID: "bg", Steps: []rollout.Step{
				rollout.BlueGreen(versionUpgrader{ga, dir, "v2"}, "v2", rollout.BakeOptions{
					Window: 600 * time.Millisecond, Interval: 200 * time.Millisecond,
					Analyzers: []rollout.Analyzer{fileAnalyzer(filepath.Join(dir, "fault"))},
				}).Named("bg"),
			}}
			r, err := rollout.New(ctx, plan, rollout.Options{Store: store, Version: version})
			if err != nil {
				note("rollout: %v", err)
				return
			}
			err = r.Run(ctx)
			note("run: %v", err)
			if !errors.Is(err, rollout.ErrHandedOff) {
				return
			}
			resumed, err := ga.AwaitDrive(ctx)
			note("await: resumed=%v err=%v", resumed, err)
			if !resumed {
				return
			}
		}
	}()
	if err := upg.Run(ctx); err != nil {
		note("run graceful: %v", err)
		return 1
	}
	<-driven
	note("exit")
	return 0
}

type gracefulService struct {
	t     *testing.T
	dir   string
	addr  string
	first int
}

func startGracefulService(t *testing.T, fault bool) *gracefulService {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "version"), []byte("v1"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fault {
		if err := os.WriteFile(filepath.Join(dir, "fault"), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd, err := testchild.Command(context.Background(), roleGraceful, gracefulDir+"="+dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(waited) }()
	s := &gracefulService{t: t, dir: dir, first: cmd.Process.Pid}
	t.Cleanup(func() {
		for _, pid := range s.pids() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		<-waited
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "log"))
			t.Logf("service log:\n%s", b)
		}
	})
	s.waitLog("addr", func() bool {
		b, err := os.ReadFile(filepath.Join(dir, "addr"))
		return err == nil && len(b) > 0
	})
	b, _ := os.ReadFile(filepath.Join(dir, "addr"))
	s.addr = string(b)
	return s
}

// pids lists every process that wrote to the log.
func (s *gracefulService) pids() []int {
	b, _ := os.ReadFile(filepath.Join(s.dir, "log"))
	seen := map[int]bool{}
	var out []int
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		if pid, err := strconv.Atoi(f[1]); err == nil && !seen[pid] {
			seen[pid] = true
			out = append(out, pid)
		}
	}
	return out
}

func (s *gracefulService) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "log"))
	return string(b)
}

// waitLog waits (bounded) until cond holds; the service's processes only
// say what they do in their log file, so it is polled.
func (s *gracefulService) waitLog(what string, cond func() bool) {
	s.t.Helper()
	testchild.Eventually(s.t, what, 0, 0, func() error {
		if cond() {
			return nil
		}
		return fmt.Errorf("not yet; service log:\n%s", s.log())
	})
}

func (s *gracefulService) get() string {
	s.t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + s.addr + "/")
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// A passing bake: the v2 process takes over, promotes, and the v1 process
// drains and exits long before graceful's one-minute window.
func TestUpgraderPromote(t *testing.T) {
	s := startGracefulService(t, false)
	s.waitLog("v2 to finish the rollout", func() bool { return strings.Contains(s.log(), "v2 ") && strings.Contains(s.log(), "run: <nil>") })
	s.waitLog("v1 to exit", func() bool { return testchild.Gone(s.first) })
	if got := s.get(); !strings.HasPrefix(got, "v2 ") {
		t.Errorf("after the promotion %q answers, want v2", got)
	}
	l := s.log()
	if !strings.Contains(l, fmt.Sprintf("v1 %d await: resumed=false", s.first)) {
		t.Errorf("v1 did not learn it was replaced:\n%s", l)
	}
}

// A failing bake: the v2 process gives serving back, v1 resumes (the same
// process), finishes the rollback, and v2 exits.
func TestUpgraderRollback(t *testing.T) {
	s := startGracefulService(t, true)
	want := fmt.Sprintf("v1 %d run: rollout: rolled back", s.first)
	s.waitLog("v1 to finish the rollback", func() bool { return strings.Contains(s.log(), want) })
	if got := s.get(); got != fmt.Sprintf("v1 %d", s.first) {
		t.Errorf("after the rollback %q answers, want v1 %d", got, s.first)
	}
	l := s.log()
	if !strings.Contains(l, fmt.Sprintf("v1 %d await: resumed=true", s.first)) {
		t.Errorf("v1 did not resume:\n%s", l)
	}
	for _, pid := range s.pids() {
		if pid != s.first {
			s.waitLog("v2 to exit", func() bool { return testchild.Gone(pid) })
		}
	}
}
