package canary_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/internal/testchild"
)

// The test binary doubles as the upstream server: in the testchild role
// "upstream", TestMain serves HTTP instead of running tests.
const (
	envName      = "BATON_CANARY_NAME"       // which version it plays: stable or canary
	envListen    = "BATON_CANARY_LISTEN"     // "tcp" or a Unix socket path
	envFailEvery = "BATON_CANARY_FAIL_EVERY" // answer 500 to every n-th request
)

// runUpstream serves until SIGTERM or until its stdin closes (the parent
// died), then shuts down gracefully and returns its exit status. It
// announces its address with a line "READY <addr>" on stdout.
func runUpstream() int {
	role := os.Getenv(envName)
	failEvery, _ := strconv.Atoi(os.Getenv(envFailEvery))
	var n atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("X-Served-By", role)
		// A body that arrives cut or padded is a server error, so that
		// mirrored copies with broken bodies show up as mirror errors.
		if want := r.Header.Get("X-Body-Len"); want != "" && want != strconv.Itoa(len(body)) {
			http.Error(w, "body length mismatch", http.StatusInternalServerError)
			return
		}
		if failEvery > 0 && n.Add(1)%int64(failEvery) == 0 {
			http.Error(w, "injected failure", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "%s %d", role, len(body))
	})
	var ln net.Listener
	var err error
	if where := os.Getenv(envListen); where == "tcp" {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	} else {
		ln, err = net.Listen("unix", where)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		return 2
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- syscall.SIGTERM
	}()
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	addr := ln.Addr().String()
	if ln.Addr().Network() == "unix" {
		addr = "unix:" + addr
	}
	fmt.Printf("READY %s\n", addr)
	select {
	case <-stop:
	case err := <-done:
		fmt.Fprintln(os.Stderr, "serve:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		return 1
	}
	return 0
}

// startUpstream re-executes the test binary as an upstream and waits for
// its READY line.
func startUpstream(t *testing.T, role, listen string, failEvery int) *canary.Upstream {
	t.Helper()
	cmd, err := testchild.Command(context.Background(), "upstream",
		envName+"="+role, envListen+"="+listen, envFailEvery+"="+strconv.Itoa(failEvery))
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := testchild.NewLines(role+" upstream", stdout)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		stdin.Close()
		if err := testchild.Wait(t, role+" upstream", cmd, 0); err != nil {
			t.Errorf("%s upstream exited: %v", role, err)
		}
	})
	addr := strings.TrimPrefix(lines.AwaitPrefix(t, "READY ", 0), "READY ")
	u, err := canary.NewUpstream(canary.UpstreamOptions{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

type loadResult struct {
	byVariant map[string]int
	statuses  map[int]int
	sticky    bool
}

// load sends n requests from workers goroutines, with keys from a pool of
// users, and checks that each user is served by one process throughout.
func load(t *testing.T, url string, n, workers, users int) loadResult {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var mu sync.Mutex
	res := loadResult{byVariant: map[string]int{}, statuses: map[int]int{}, sticky: true}
	servedBy := map[string]string{}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				user := "user-" + strconv.Itoa(int(i)%users)
				body := strings.Repeat("x", int(i%64))
				req, _ := http.NewRequest("POST", url, strings.NewReader(body))
				req.Header.Set("X-User", user)
				req.Header.Set("X-Body-Len", strconv.Itoa(len(body)))
				resp, err := client.Do(req)
				if err != nil {
					t.Errorf("request %d: %v", i, err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				by := resp.Header.Get("X-Served-By")
				mu.Lock()
				res.statuses[resp.StatusCode]++
				res.byVariant[by]++
				if prev, ok := servedBy[user]; ok && prev != by {
					res.sticky = false
				}
				servedBy[user] = by
				if resp.StatusCode == 200 && string(b) != by+" "+strconv.Itoa(len(body)) {
					t.Errorf("request %d: body %q from %s", i, b, by)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return res
}

func e2eSetup(t *testing.T, canaryFailEvery int) (*canary.Splitter, string) {
	stable := startUpstream(t, "stable", "tcp", 0)
	cnry := startUpstream(t, "canary", filepath.Join(t.TempDir(), "canary.sock"), canaryFailEvery)
	// Short intervals: the interval in which the weight changes is left
	// out of the analysis, and these batches take well under a second.
	s, err := canary.New(canary.Options{Stable: stable, Canary: cnry, Key: canary.KeyOptions{Header: "X-User"},
		Window: 10 * time.Second, Resolution: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		if err := await(t, served, "the server to stop"); !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	})
	return s, "http://" + ln.Addr().String() + "/"
}

// TestEndToEndBadCanaryRolledBack runs a stable process on TCP and a canary
// process on a Unix socket that fails one request in ten, behind a real
// server, and drives the controller between batches of load.
func TestEndToEndBadCanaryRolledBack(t *testing.T) {
	s, url := e2eSetup(t, 10)
	ctl, err := canary.NewController(canary.ControllerOptions{
		Splitter: s,
		Steps:    []canary.Step{{Weight: 1000, MinDuration: time.Nanosecond, MaxDuration: time.Minute}, {Weight: 5000, MinDuration: time.Nanosecond, MaxDuration: time.Minute}},
		Analysis: canary.AnalysisOptions{SkipLatency: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	for batch := 0; batch < 10 && !ctl.Status().Phase.Done(); batch++ {
		res := load(t, url, 1500, 8, 300)
		if !res.sticky {
			t.Fatalf("batch %d: a user was served by both processes at one weight", batch)
		}
		if _, err := ctl.Evaluate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	st := ctl.Status()
	if st.Phase != canary.PhaseRolledBack || st.Weight != 0 {
		t.Fatalf("bad canary: %s at %d (%s)", st.Phase, st.Weight, st.Reason)
	}
	if !strings.Contains(st.Reason, "canary error rate") {
		t.Errorf("abort reason does not name the error rate: %s", st.Reason)
	}
	t.Logf("aborted: %s", st.Reason)
	// After the abort every request is served by stable, without errors.
	res := load(t, url, 1000, 8, 300)
	if res.byVariant["canary"] != 0 || res.statuses[200] != 1000 {
		t.Fatalf("after abort: %v %v", res.byVariant, res.statuses)
	}
}

func TestEndToEndGoodCanaryPromoted(t *testing.T) {
	s, url := e2eSetup(t, 0)
	var events []canary.EventKind
	ctl, err := canary.NewController(canary.ControllerOptions{
		Splitter: s,
		Steps:    []canary.Step{{Weight: 1000, MinDuration: time.Nanosecond, MaxDuration: time.Minute}, {Weight: 5000, MinDuration: time.Nanosecond, MaxDuration: time.Minute}},
		// Latency is left out: two processes on one busy machine (one
		// over TCP, one over a Unix socket) differ for reasons that have
		// nothing to do with the code under test.
		Analysis: canary.AnalysisOptions{SkipLatency: true},
		OnEvent:  func(e canary.Event) { events = append(events, e.Kind) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := ctl.Start(); err != nil {
		t.Fatal(err)
	}
	total := map[string]int{}
	for batch := 0; batch < 10 && !ctl.Status().Phase.Done(); batch++ {
		res := load(t, url, 1000, 8, 300)
		if res.statuses[200] != 1000 {
			t.Fatalf("batch %d: statuses %v", batch, res.statuses)
		}
		for k, v := range res.byVariant {
			total[k] += v
		}
		if _, err := ctl.Evaluate(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	st := ctl.Status()
	if st.Phase != canary.PhaseSucceeded || st.Weight != canary.MaxWeight {
		t.Fatalf("good canary: %s at %d (%s)", st.Phase, st.Weight, st.Reason)
	}
	want := []canary.EventKind{canary.EventStarted, canary.EventStep, canary.EventPromoted}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Errorf("events %v, want %v", events, want)
	}
	if total["canary"] == 0 || total["stable"] == 0 {
		t.Errorf("traffic split %v", total)
	}
	res := load(t, url, 500, 8, 300)
	if res.byVariant["canary"] != 500 {
		t.Errorf("after promotion: %v", res.byVariant)
	}
}

// TestEndToEndMirror copies stable traffic, bodies included, to a canary
// process over a Unix socket while clients see only stable's answers.
func TestEndToEndMirror(t *testing.T) {
	stable := startUpstream(t, "stable", "tcp", 0)
	cnry := startUpstream(t, "canary", filepath.Join(t.TempDir(), "canary.sock"), 0)
	s, err := canary.New(canary.Options{Stable: stable, Canary: cnry, Mirror: &canary.MirrorOptions{MaxConcurrent: 64}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	res := load(t, "http://"+ln.Addr().String()+"/", 600, 4, 50)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := await(t, served, "the server to stop"); err != nil && !errors.Is(err, http.ErrServerClosed) {
		t.Error(err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if res.byVariant["stable"] != 600 || res.statuses[200] != 600 {
		t.Fatalf("clients saw %v %v", res.byVariant, res.statuses)
	}
	ms := s.MirrorStats()
	n, e := s.Metrics().Totals(canary.Mirror)
	if ms.Sent == 0 || n != ms.Sent || e != 0 || ms.Sent+ms.Dropped+ms.Skipped != 600 || ms.Skipped != 0 {
		t.Fatalf("mirror stats %+v, canary answered %d copies with %d errors", ms, n, e)
	}
	t.Logf("mirrored %d of 600 requests (%d dropped with every slot busy)", ms.Sent, ms.Dropped)
}
