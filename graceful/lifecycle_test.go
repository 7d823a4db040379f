package graceful_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/batonhq/baton/graceful"
)

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
	shutdown(t, u)
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
	resp, err := (&http.Client{Transport: tr, Timeout: testWait}).Get("http://" + ln.Addr().String() + "/")
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

	shutdown(t, u)
	if err := recv(t, "Serve to return", served); !errors.Is(err, http.ErrServerClosed) {
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
