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
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
)

const (
	serverEnv  = "BATON_ROLLOUT_TEST_SERVER" // the version to serve
	serverAddr = "BATON_ROLLOUT_TEST_ADDR_FILE"
)

// serverMain is a tiny service: it serves its version on /healthz (500 for
// version "sick"), exits at once with status 3 for version "crash", and
// stops on SIGTERM.
func serverMain() int {
	v := os.Getenv(serverEnv)
	if v == "crash" {
		return 3
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
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var ts []*rollout.ProcessTarget
	for i := range n {
		addrFile := filepath.Join(dir, fmt.Sprintf("p%d.addr", i))
		var pt *rollout.ProcessTarget
		pt, err = rollout.NewProcessTarget(rollout.ProcessTargetOptions{
			Name: fmt.Sprintf("p%d", i),
			Command: func(version string) *exec.Cmd {
				os.Remove(addrFile) // the new process announces itself afresh
				cmd := exec.Command(exe, "-test.run=^$")
				cmd.Env = append(os.Environ(), serverEnv+"="+version, serverAddr+"="+addrFile)
				return cmd
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
		err = r.Run(context.Background())
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
