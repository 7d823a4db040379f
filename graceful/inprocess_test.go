//go:build linux

package graceful_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/internal/testchild"
)

// The test process itself is the old process: Upgrade's error names the
// cause, a good Upgrade hands the listener over, and metrics follow.
func TestUpgradeInProcess(t *testing.T) {
	dir := t.TempDir()
	pidfile := filepath.Join(dir, "pid")
	exe := filepath.Join(dir, "server")
	if err := os.WriteFile(exe, []byte("#!/bin/sh\necho starting >&2\necho 'fatal: cannot open /data' >&2\nexit 3\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	defer tp.Shutdown(context.Background())
	u, err := graceful.New(graceful.Options{
		Executable:     exe,
		Args:           []string{"-addr", "127.0.0.1:0", "-pidfile", pidfile},
		MeterProvider:  mp,
		TracerProvider: tp,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	// Every upgrade of this test has this deadline.
	ctx, cancel := context.WithTimeout(context.Background(), testWait)
	defer cancel()
	if err := u.Upgrade(ctx); !errors.Is(err, graceful.ErrNotReady) {
		t.Fatalf("Upgrade before Ready: %v", err)
	}
	ln, err := u.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pid=old\n") })}
	u.HTTP(srv)
	go srv.Serve(ln)
	if err := u.Ready(ctx); err != nil {
		t.Fatal(err)
	}

	err = u.Upgrade(ctx)
	var ue *graceful.UpgradeError
	if !errors.As(err, &ue) || !errors.Is(err, graceful.ErrChildExited) {
		t.Fatalf("Upgrade to a failing binary: %v", err)
	}
	if ue.ExitStatus != 3 || ue.PID == 0 || ue.Path != exe || len(ue.Stderr) != 2 || ue.Stderr[1] != "fatal: cannot open /data" {
		t.Errorf("error lacks the cause: %+v", ue)
	}
	if u.State() != graceful.StateReady {
		t.Errorf("state after a failed upgrade: %v", u.State())
	}

	// Now a good binary: the listener is handed over.
	data, err := os.ReadFile(goodBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(exe+".new", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(exe+".new", exe); err != nil {
		t.Fatal(err)
	}
	if err := u.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	child := waitFile(t, pidfile)
	t.Cleanup(func() {
		var pid int
		if _, err := fmt.Sscan(child, &pid); err == nil {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(t, pid)
		}
	})
	recv(t, "this process to finish serving after the handoff", u.Done())
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: testWait}
	resp, err := c.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(b)) != "pid="+child {
		t.Errorf("answered %q, want the new process %s", b, child)
	}
	if err := u.Upgrade(ctx); !errors.Is(err, graceful.ErrDraining) {
		t.Errorf("Upgrade after handoff: %v", err)
	}

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	var handoffs uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					for _, kv := range p.Attributes.ToSlice() {
						got[m.Name+"/"+kv.Value.AsString()] += p.Value
					}
				}
			case metricdata.Histogram[float64]:
				if m.Name == "baton.graceful.handoff.duration" {
					for _, p := range d.DataPoints {
						handoffs += p.Count
					}
				}
			}
		}
	}
	var outcomes []string
	for _, sp := range spans.Ended() {
		for _, kv := range sp.Attributes() {
			if kv.Key == "graceful.outcome" {
				outcomes = append(outcomes, sp.Name()+"="+kv.Value.AsString()+"/"+sp.Status().Code.String())
			}
		}
	}
	if strings.Join(outcomes, " ") != "graceful.upgrade=failed/Error graceful.upgrade=handed_off/Unset" {
		t.Errorf("spans: %v", outcomes)
	}
	if got["baton.graceful.upgrades/failed"] != 1 || got["baton.graceful.upgrades/succeeded"] != 1 || handoffs != 1 {
		t.Errorf("metrics: %v, %d handoffs", got, handoffs)
	}
}

// Cancelling Upgrade's context kills the new process and leaves this one
// serving.
func TestUpgradeCancelled(t *testing.T) {
	exe := filepath.Join(t.TempDir(), "server")
	script := "#!/bin/sh\nBATON_TEST_FAULT=hang exec " + goodBin + " \"$@\"\n"
	if err := os.WriteFile(exe, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	u, err := graceful.New(graceful.Options{Executable: exe, Args: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if err := u.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- u.Upgrade(ctx) }()
	testchild.Eventually(t, "the upgrade to start", processWait, poll, func() error {
		if st := u.State(); st != graceful.StateUpgrading {
			return fmt.Errorf("state %v", st)
		}
		return nil
	})
	cancel()
	err = recv(t, "the cancelled Upgrade to return", done)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Upgrade: %v, want context.Canceled", err)
	}
	var ue *graceful.UpgradeError
	if !errors.As(err, &ue) || ue.PID == 0 || ue.Path != exe || !strings.Contains(err.Error(), "caller gave up") {
		t.Errorf("cancelled Upgrade does not name the process and the cause: %v", err)
	}
	if st := u.State(); st != graceful.StateReady {
		t.Errorf("state %v after a cancelled upgrade", st)
	}
}
