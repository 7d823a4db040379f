package promanalysis_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/promanalysis"
)

// instance is one service process's worth of canary: a splitter whose
// metrics go through the OpenTelemetry Prometheus exporter to /metrics on
// a loopback port, under load from its own goroutines.
type instance struct {
	addr string
	srv  *http.Server
	sp   *canary.Splitter
	mp   *sdkmetric.MeterProvider
	stop chan struct{}
	wg   sync.WaitGroup
}

func sleeper(d time.Duration, errEvery int) http.Handler {
	var mu sync.Mutex
	n := 0
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The sleep is the latency being measured, not a wait for
		// anything.
		time.Sleep(d)
		if errEvery > 0 {
			mu.Lock()
			n++
			fail := n%errEvery == 0
			mu.Unlock()
			if fail {
				w.WriteHeader(http.StatusInternalServerError)
			}
		}
	})
}

func startInstance(t *testing.T, stable, canaryH http.Handler) *instance {
	t.Helper()
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{mp: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)), stop: make(chan struct{})}
	in.sp, err = canary.New(canary.Options{Stable: stable, Canary: canaryH, Weight: 3000, MeterProvider: in.mp})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in.addr = ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	in.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	in.wg.Go(func() { _ = in.srv.Serve(ln) })
	for range 2 {
		in.wg.Go(func() {
			for {
				select {
				case <-in.stop:
					return
				default:
				}
				in.sp.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil))
			}
		})
	}
	t.Cleanup(func() {
		close(in.stop)
		_ = in.srv.Close()
		in.wg.Wait()
		_ = in.sp.Close()
		_ = in.mp.Shutdown(context.Background())
	})
	return in
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startPrometheus runs a real Prometheus server scraping jobs (name ->
// targets) every second, and returns its address once it is ready.
func startPrometheus(t *testing.T, jobs map[string][]string) string {
	t.Helper()
	bin := os.Getenv("BATON_PROMETHEUS")
	if bin == "" {
		p, err := exec.LookPath("prometheus")
		if err != nil {
			t.Skip("prometheus not found in PATH (install Debian's prometheus package, or set BATON_PROMETHEUS to its binary)")
		}
		bin = p
	}
	dir := t.TempDir()
	var cfg strings.Builder
	cfg.WriteString("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nscrape_configs:\n")
	for name, targets := range jobs {
		fmt.Fprintf(&cfg, "  - job_name: %q\n    static_configs:\n      - targets: [%s]\n", name, quoted(targets))
	}
	cfgFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgFile, []byte(cfg.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freePort(t)
	var out bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+cfgFile, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("prometheus output:\n%s", tail(out.String(), 3000))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("prometheus exited before it was ready: %v\n%s", err, tail(out.String(), 3000))
		default:
		}
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return "http://" + addr
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus at %s not ready within 60s (last: %v)", addr, err)
		}
		time.Sleep(100 * time.Millisecond) // polling with a deadline
	}
}

func quoted(s []string) string {
	q := make([]string, len(s))
	for i, x := range s {
		q[i] = fmt.Sprintf("%q", x)
	}
	return strings.Join(q, ", ")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestAgainstPrometheus: a real Prometheus scrapes three pairs of
// instances (a healthy canary, one failing 1 request in 5, one three times
// slower); the analyzer passes the first and fails the others, each on the
// right check.
func TestAgainstPrometheus(t *testing.T) {
	ok := 2 * time.Millisecond
	scenarios := []struct {
		job           string
		stable, canry http.Handler
		want          rollout.Verdict
		check         string
	}{
		{"healthy", sleeper(ok, 0), sleeper(ok, 0), rollout.Pass, ""},
		{"errors", sleeper(ok, 0), sleeper(ok, 5), rollout.Fail, "error rate"},
		{"slow", sleeper(ok, 0), sleeper(3*ok, 0), rollout.Fail, "latency"},
	}
	jobs := map[string][]string{}
	for _, s := range scenarios {
		for range 2 {
			jobs[s.job] = append(jobs[s.job], startInstance(t, s.stable, s.canry).addr)
		}
	}
	addr := startPrometheus(t, jobs)
	for _, s := range scenarios {
		t.Run(s.job, func(t *testing.T) {
			a, err := promanalysis.New(promanalysis.Options{Address: addr, Labels: map[string]string{"job": s.job},
				Window: 30 * time.Second, Step: 2 * time.Second, Looks: 20})
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(90 * time.Second)
			var rep promanalysis.Report
			for {
				rep, err = a.Measure(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if rep.Verdict != rollout.Inconclusive {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("still inconclusive after 90s: %s", rep.Reason)
				}
				time.Sleep(time.Second) // the next scrape
			}
			t.Logf("%s: %s (%.0f canary, %.0f stable requests, weight %.2f)", rep.Verdict, rep.Reason,
				rep.Canary.Requests, rep.Stable.Requests, rep.Weight)
			if rep.Verdict != s.want {
				t.Fatalf("verdict %s, want %s: %s", rep.Verdict, s.want, rep.Reason)
			}
			if rep.Weight < 0.29 || rep.Weight > 0.31 {
				t.Errorf("weight %v, want 0.3", rep.Weight)
			}
			for _, c := range rep.Checks {
				if (c.Verdict == rollout.Fail) != (c.Name == s.check) {
					t.Errorf("check %s: %s (%s)", c.Name, c.Verdict, c.Detail)
				}
			}
			// The same through rollout's interface.
			if v, reason, err := a.Analyze(context.Background()); err != nil || v != s.want {
				t.Errorf("Analyze: %s, %v (%s)", v, err, reason)
			}
		})
	}
	t.Run("unreachable", func(t *testing.T) {
		a, err := promanalysis.New(promanalysis.Options{Address: "http://" + freePort(t), Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = a.Analyze(context.Background())
		var qe *promanalysis.QueryError
		if !errors.As(err, &qe) || qe.What != "weight" {
			t.Fatalf("Analyze against no server: %v, want a QueryError for the weight", err)
		}
	})
}
