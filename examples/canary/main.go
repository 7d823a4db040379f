// Command canary runs two versions of a handler in one binary behind a
// canary splitter, drives a progressive rollout with the controller while a
// load loop sends keyed traffic over a real socket, and shows a good canary
// promoted and a bad one (more errors, added latency) rolled back.
//
//	go run ./examples/canary                 # both scenarios, about 40 s
//	go run ./examples/canary -scenario bad -v2-errors 0.05 -v2-latency 20ms
//
// It exits with status 1 if a scenario does not end as expected (good:
// promoted, bad: aborted), so it doubles as a smoke test; a good canary is
// wrongly rolled back with probability at most -alpha (1%), so a CI run
// passes -alpha 0.001.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/canary"
)

func main() {
	scenario := flag.String("scenario", "both", "good, bad or both")
	rps := flag.Int("rps", 400, "requests per second of the load loop")
	v2Errors := flag.Float64("v2-errors", 0.03, "error rate of the bad v2")
	v2Latency := flag.Duration("v2-latency", 3*time.Millisecond, "latency the bad v2 adds")
	stepFor := flag.Duration("step", 6*time.Second, "minimum duration of each step")
	alpha := flag.Float64("alpha", canary.DefaultAlpha, "bound on the false-rollback probability of one rollout")
	flag.Parse()

	cfg := config{rps: *rps, stepFor: *stepFor, interval: 2 * time.Second, alpha: *alpha, out: os.Stdout}
	ok := true
	if *scenario == "good" || *scenario == "both" {
		ok = run("good", 0, 0, cfg, canary.PhaseSucceeded) && ok
	}
	if *scenario == "bad" || *scenario == "both" {
		ok = run("bad", *v2Errors, *v2Latency, cfg, canary.PhaseRolledBack) && ok
	}
	if !ok {
		os.Exit(1)
	}
}

// config is what both scenarios share.
type config struct {
	rps      int           // load loop rate
	stepFor  time.Duration // minimum duration of each step
	interval time.Duration // between analyses
	alpha    float64       // false-rollback bound of one rollout
	out      io.Writer     // the report
}

// version is a handler whose latency is log-normal around 2 ms, plus extra,
// and which fails a share of requests.
func version(name string, errRate float64, extra time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(time.Duration(float64(2*time.Millisecond)*math.Exp(0.5*rand.NormFloat64())) + extra)
		if rand.Float64() < errRate {
			http.Error(w, name+": something broke", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "hello from %s\n", name)
	})
}

func run(name string, v2Errors float64, v2Latency time.Duration, cfg config, want canary.Phase) bool {
	rps, stepFor, alpha, out := cfg.rps, cfg.stepFor, cfg.alpha, cfg.out
	fmt.Fprintf(out, "== scenario %s: v2 error rate %.1f%%, v2 added latency %s\n", name, 100*v2Errors, v2Latency)
	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	split, err := canary.New(canary.Options{
		Stable:     version("v1", 0.001, 0),
		Canary:     version("v2", 0.001+v2Errors, v2Latency),
		Key:        canary.KeyOptions{Header: "X-User-ID", AssignCookie: "canary-id"},
		Window:     20 * time.Second,
		Resolution: time.Second,
		Logger:     logger,
	})
	if err != nil {
		fmt.Fprintln(out, err)
		return false
	}
	defer split.Close()
	ctl, err := canary.NewController(canary.ControllerOptions{
		Splitter: split,
		// A step moves on only with positive evidence that v2 is no
		// worse; give each step time to gather it.
		Steps: []canary.Step{
			{Weight: 1000, MinDuration: stepFor, MaxDuration: 8 * stepFor},
			{Weight: 2500, MinDuration: stepFor, MaxDuration: 8 * stepFor},
			{Weight: 5000, MinDuration: stepFor, MaxDuration: 8 * stepFor},
		},
		Interval: cfg.interval,
		// Roll back on any significant error increase or a slowdown past
		// 5%; promote once the data rules out +1 point of errors and a
		// 20% slowdown.
		Analysis: canary.AnalysisOptions{Alpha: alpha, PassErrorMargin: 0.01, PassLatencyMargin: 0.2},
		OnEvent: func(e canary.Event) {
			fmt.Fprintf(out, "   %-8s weight %5.2f%%  %s\n", e.Kind, float64(e.Weight)/100, e.Reason)
		},
	})
	if err != nil {
		fmt.Fprintln(out, err)
		return false
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(out, err)
		return false
	}
	srv := &http.Server{Handler: split, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())

	// The rollout gets its steps' deadlines plus slack.
	ctx, cancel := context.WithTimeout(context.Background(), 24*stepFor+20*time.Second)
	defer cancel()
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	loadCtx, stopLoad := context.WithCancel(ctx)
	wg.Go(func() { loadLoop(loadCtx, "http://"+ln.Addr().String()+"/", rps, &sent, &failed) })

	err = ctl.Run(ctx)
	stopLoad()
	wg.Wait()
	st := ctl.Status()
	fmt.Fprintf(out, "   result: %s after %d requests (%d failed)", st.Phase, sent.Load(), failed.Load())
	var ae *canary.AbortError
	switch {
	case err == nil:
		fmt.Fprintln(out)
	case errors.As(err, &ae):
		fmt.Fprintf(out, "\n   reason: %s\n", ae.Reason)
	default:
		fmt.Fprintf(out, ": %v\n", err)
	}
	// The last analysis's figures: the weight has moved on since (100%
	// or 0), and nothing has run at the new weight yet.
	last := st.Last
	fmt.Fprintf(out, "   last analysis at %s: stable %d req, %.2f%% errors, p99 %s | canary %d req, %.2f%% errors, p99 %s\n",
		formatBP(last.Weight), last.Stable.Requests, 100*last.Stable.ErrorRate, last.Stable.P99.Round(10*time.Microsecond),
		last.Canary.Requests, 100*last.Canary.ErrorRate, last.Canary.P99.Round(10*time.Microsecond))
	if st.Phase != want {
		fmt.Fprintf(out, "   UNEXPECTED: wanted %s\n", want)
		return false
	}
	return true
}

// loadLoop sends rps requests per second from 10,000 users until ctx ends;
// at most 64 are in flight, and a tick with none free is skipped.
func loadLoop(ctx context.Context, url string, rps int, sent, failed *atomic.Int64) {
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	slots := make(chan struct{}, 64)
	tick := time.NewTicker(time.Second / time.Duration(rps))
	defer tick.Stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		select {
		case slots <- struct{}{}:
		default:
			continue
		}
		wg.Go(func() {
			defer func() { <-slots }()
			req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
			req.Header.Set("X-User-ID", "user-"+strconv.Itoa(rand.IntN(10000)))
			resp, err := client.Do(req)
			if err != nil {
				return // canceled at the end of the run
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			sent.Add(1)
			if resp.StatusCode >= 500 {
				failed.Add(1)
			}
		})
	}
}

func formatBP(bp uint32) string { return strconv.FormatFloat(float64(bp)/100, 'f', -1, 64) + "%" }
