package canary_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/canary/canarytest"
)

// Two code paths in one binary: 10% of users (sticky by X-User-ID) and
// everyone with X-Staff: yes get v2.
func ExampleNew() {
	v1 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v1") })
	v2 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "v2") })
	split, err := canary.New(canary.Options{
		Stable:   v1,
		Canary:   v2,
		Weight:   1000, // basis points: 10%
		Key:      canary.KeyOptions{Header: "X-User-ID"},
		Segments: []canary.Segment{canary.HeaderSegment("staff", "X-Staff", "yes")},
		Override: canary.Override{Secret: "only-for-the-team"},
	})
	if err != nil {
		panic(err)
	}
	defer split.Close()

	for _, h := range [][2]string{{"X-User-ID", "alice"}, {"X-User-ID", "carol"}, {"X-Staff", "yes"}} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set(h[0], h[1])
		w := httptest.NewRecorder()
		split.ServeHTTP(w, r)
		v, why := split.Explain(r)
		fmt.Printf("%s=%s: %s (%s by %s)\n", h[0], h[1], w.Body, v, why)
	}
	// Output:
	// X-User-ID=alice: v1 (stable by weight)
	// X-User-ID=carol: v2 (canary by weight)
	// X-Staff=yes: v2 (canary by segment)
}

// A rollout on a manual clock: the canary fails 5% of requests where stable
// fails none, and the first check with enough data (100 requests of each
// variant) rolls it back.
func ExampleController() {
	clock := canarytest.NewClock(canarytest.Epoch)
	split, _ := canary.New(canary.Options{Stable: http.NotFoundHandler(), Canary: http.NotFoundHandler(), Clock: clock})
	defer split.Close()
	ctl, _ := canary.NewController(canary.ControllerOptions{
		Splitter: split,
		Steps:    []canary.Step{{Weight: 500, MinDuration: time.Minute}, {Weight: 2500, MinDuration: time.Minute}},
		Analysis: canary.AnalysisOptions{SkipLatency: true},
		OnEvent:  func(e canary.Event) { fmt.Printf("%s at %d%%\n", e.Kind, e.Weight/100) },
	})
	_ = ctl.Start()
	m := split.Metrics()
	for check := 1; check <= 3; check++ {
		for i := range 2000 { // 10 s of traffic: 1900 stable, 100 canary
			at := clock.Now().Add(time.Duration(i) * 5 * time.Millisecond)
			if i%20 == 0 {
				m.RecordAt(canary.Canary, at, time.Millisecond, i%400 == 0)
			} else {
				m.RecordAt(canary.Stable, at, time.Millisecond, false)
			}
		}
		clock.Advance(10 * time.Second)
		r, _ := ctl.Evaluate(context.Background())
		fmt.Printf("check %d: %s\n", check, r.Verdict)
		if ctl.Status().Phase.Done() {
			break
		}
	}
	st := ctl.Status()
	fmt.Println(st.Phase, st.Weight)
	// Output:
	// started at 5%
	// aborted at 0%
	// check 1: fail
	// rolled-back 0
}

// A target in another process: the new binary listening on a Unix socket
// (here a server in this process stands in for it).
func ExampleNewUpstream() {
	dir, err := os.MkdirTemp("", "canary-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "v2.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		panic(err)
	}
	v2srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "v2 served %s for %s", r.URL.Path, r.Host)
	}), ReadHeaderTimeout: 5 * time.Second}
	go v2srv.Serve(ln)
	defer v2srv.Close()

	v2, err := canary.NewUpstream(canary.UpstreamOptions{Address: "unix:" + sock})
	if err != nil {
		panic(err)
	}
	defer v2.Close()
	split, err := canary.New(canary.Options{Stable: http.NotFoundHandler(), Canary: v2, Weight: canary.MaxWeight})
	if err != nil {
		panic(err)
	}
	defer split.Close()

	w := httptest.NewRecorder()
	split.ServeHTTP(w, httptest.NewRequest("GET", "http://shop.example/cart", nil))
	fmt.Println(w.Code, w.Body)
	// Output:
	// 200 v2 served /cart for shop.example
}
