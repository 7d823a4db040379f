package graceful_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

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
	ctx := context.Background()
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
	<-u.Done()
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
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

func TestOptionsRejected(t *testing.T) {
	_, err := graceful.New(graceful.Options{DrainTimeout: -time.Second})
	if err == nil || !strings.Contains(err.Error(), "Options.DrainTimeout is negative") {
		t.Fatalf("negative DrainTimeout: %v", err)
	}
	u, err := graceful.New(graceful.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if _, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Listen(context.Background(), "tcp", "127.0.0.1:0"); err == nil || !strings.Contains(err.Error(), `Listen("tcp", "127.0.0.1:0") called twice`) {
		t.Errorf("second Listen on the same address: %v", err)
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
	err = <-done
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

type fakeGRPC struct {
	graceful, stopped chan struct{}
	once              sync.Once
}

func (f *fakeGRPC) GracefulStop() {
	close(f.graceful)
	<-f.stopped // a stream that never ends
}

// Stop is idempotent, like grpc.Server's.
func (f *fakeGRPC) Stop() { f.once.Do(func() { close(f.stopped) }) }

// A gRPC server is stopped gracefully, then forcibly at the deadline.
func TestDrainGRPC(t *testing.T) {
	u, err := graceful.New(graceful.Options{DrainTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	g := &fakeGRPC{graceful: make(chan struct{}), stopped: make(chan struct{})}
	u.GRPC(g)
	if err := u.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := u.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.graceful:
	default:
		t.Error("GracefulStop was not called")
	}
	select {
	case <-g.stopped:
	default:
		t.Error("Stop was not called at the deadline")
	}
}

// lockedBuffer is a log destination safe to read while handlers write.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A drain reports what it drained and what it had to close at the
// deadline, as metrics and as a log event.
func TestDrainObservability(t *testing.T) {
	reader := metric.NewManualReader()
	mp := metric.NewMeterProvider(metric.WithReader(reader))
	defer mp.Shutdown(context.Background())
	var logs lockedBuffer
	u, err := graceful.New(graceful.Options{
		DrainTimeout:  300 * time.Millisecond,
		MeterProvider: mp,
		Logger:        slog.New(slog.NewJSONHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	ctx := context.Background()
	ln, err := u.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })}
	u.HTTP(srv)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	if err := u.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	// One keep-alive connection, idle once answered: drained.
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// One tracked connection that never finishes: closed at the deadline.
	ours, theirs := net.Pipe()
	defer theirs.Close()
	release := u.Track(ours, nil)
	defer release()

	if err := u.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve: %v", err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	conns := map[string]int64{}
	var drains uint64
	var drainSum float64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				if m.Name != "baton.graceful.drain.connections" {
					continue
				}
				for _, p := range d.DataPoints {
					r, _ := p.Attributes.Value("result")
					conns[r.AsString()] += p.Value
				}
			case metricdata.Histogram[float64]:
				if m.Name == "baton.graceful.drain.duration" {
					for _, p := range d.DataPoints {
						drains += p.Count
						drainSum += p.Sum
					}
				}
			}
		}
	}
	if conns["drained"] != 1 || conns["forced"] != 1 {
		t.Errorf("baton.graceful.drain.connections: %v, want drained=1 forced=1", conns)
	}
	if drains != 1 || drainSum <= 0 {
		t.Errorf("baton.graceful.drain.duration: %d records, sum %g s; want one positive", drains, drainSum)
	}
	var ev struct {
		Msg     string `json:"msg"`
		Drained int    `json:"drained"`
		Forced  int    `json:"forced"`
	}
	found := false
	for _, line := range strings.Split(logs.String(), "\n") {
		if json.Unmarshal([]byte(line), &ev) == nil && ev.Msg == "drained" {
			found = ev.Drained == 1 && ev.Forced == 1
		}
	}
	if !found || !strings.Contains(logs.String(), `"msg":"shutting down"`) {
		t.Errorf("log lacks the shutdown and drain events (drained=1 forced=1):\n%s", logs.String())
	}
}
