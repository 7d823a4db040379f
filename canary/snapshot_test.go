package canary_test

import (
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
	"github.com/batonhq/baton/canary/canarytest"
)

// fleet sends the same keyed traffic through three splitters (each host
// gets a third of it) and through one that sees all of it. Handlers take
// their latency by advancing the shared manual clock, which is set back
// before the next splitter serves the same request, so every splitter
// records each request at the same time.
type fleet struct {
	clock *canarytest.Clock
	hosts [3]*canary.Splitter
	all   *canary.Splitter
	lat   time.Duration
	fail  bool
}

func newFleet(t *testing.T) *fleet {
	f := &fleet{clock: canarytest.NewClock(canarytest.Epoch)}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.clock.Advance(f.lat)
		if f.fail {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	})
	o := canary.Options{Stable: h, Canary: h, Weight: 2000, Key: canary.KeyOptions{Header: "X-User"}, Clock: f.clock}
	for i := range f.hosts {
		f.hosts[i] = newSplitter(t, o)
	}
	f.all = newSplitter(t, o)
	return f
}

// serve sends n requests from 500 users, 50 ms apart on average; the
// canary's latency is multiplied by slow and it fails canaryErr of them.
func (f *fleet) serve(n int, slow, canaryErr float64, seed uint64) {
	r := rand.New(rand.NewPCG(seed, 1))
	for i := range n {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header.Set("X-User", "user-"+strconv.Itoa(r.IntN(500)))
		host := f.hosts[i%3]
		base := math.Exp(math.Log(20e6) + 0.3*r.NormFloat64())
		u := r.Float64()
		at := f.clock.Now()
		for _, s := range []*canary.Splitter{host, f.all} {
			v := s.Route(req)
			f.lat, f.fail = time.Duration(base), u < 0.001
			if v == canary.Canary {
				f.lat, f.fail = time.Duration(base*slow), u < canaryErr
			}
			s.ServeHTTP(httptest.NewRecorder(), req)
			f.clock.Set(at)
		}
		f.clock.Advance(time.Duration(r.ExpFloat64() * float64(50*time.Millisecond)))
	}
}

// merged publishes each host's snapshot as JSON, as a fleet member would,
// and merges what it reads back.
func (f *fleet) merged(t *testing.T) *canary.Snapshot {
	t.Helper()
	var out *canary.Snapshot
	for _, h := range f.hosts {
		b, err := json.Marshal(h.Metrics().Snapshot())
		if err != nil {
			t.Fatal(err)
		}
		var s canary.Snapshot
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatal(err)
		}
		if out == nil {
			out = &s
		} else if err := out.Merge(&s); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func TestMergedSnapshotsAnalyseLikeOneSplitter(t *testing.T) {
	for _, c := range []struct {
		name      string
		slow, err float64
		want      canary.Verdict
	}{
		{"healthy", 1, 0.001, canary.Pass},
		{"errors", 1, 0.05, canary.Fail},
		{"slow", 1.3, 0.001, canary.Fail},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFleet(t)
			f.serve(12000, c.slow, c.err, 7)
			merged, whole := f.merged(t), f.all.Metrics().Snapshot()
			mw, ww := merged.Current(), whole.Current()
			for _, v := range []canary.Variant{canary.Stable, canary.Canary} {
				m, w := mw.Of(v), ww.Of(v)
				if m.Requests != w.Requests || m.Errors != w.Errors || m.Latency != w.Latency || m.UnkeyedSquares != w.UnkeyedSquares {
					t.Fatalf("%s: merged %d requests, %d errors; one splitter %d, %d (or histograms differ)", v, m.Requests, m.Errors, w.Requests, w.Errors)
				}
				for i := range w.Groups {
					mg, wg := m.Groups[i], w.Groups[i]
					mg.Over, wg.Over = 0, 0 // see below
					if mg != wg {
						t.Fatalf("%s: key group %d: merged %+v, one splitter %+v", v, i, m.Groups[i], w.Groups[i])
					}
				}
				// The tail cut is each host's own (from its previous
				// interval, a third of the traffic), so the counts
				// above it differ; the test stays exact on either.
				t.Logf("%s: %d merged requests above the tail cut, %d in one splitter", v, m.Over, w.Over)
			}
			if mw.Of(canary.Canary).Requests < 1000 {
				t.Fatalf("only %d canary requests", mw.Of(canary.Canary).Requests)
			}
			am, _ := canary.NewAnalyzer(canary.AnalysisOptions{})
			aw, _ := canary.NewAnalyzer(canary.AnalysisOptions{})
			rm, rw := am.Analyze(merged), aw.Analyze(whole)
			if rm.Verdict != c.want || rw.Verdict != c.want {
				t.Fatalf("merged: %s (%s); one splitter: %s (%s); want %s", rm.Verdict, rm.Reason, rw.Verdict, rw.Reason, c.want)
			}
			if rm.Check("error rate") != rw.Check("error rate") || rm.Check("latency") != rw.Check("latency") {
				t.Errorf("checks differ:\n merged %+v\n one    %+v", rm.Checks[:2], rw.Checks[:2])
			}
		})
	}
}

func TestMergeWeightsAndErrors(t *testing.T) {
	clock := canarytest.NewClock(canarytest.Epoch)
	mk := func(w uint32) *canary.Splitter {
		return newSplitter(t, canary.Options{Weight: w, Clock: clock, Window: time.Minute, Resolution: 10 * time.Second})
	}
	a, b := mk(500), mk(500)
	for range 30 {
		clock.Advance(time.Second)
		a.Metrics().Record(canary.Canary, time.Millisecond, false)
		b.Metrics().Record(canary.Stable, time.Millisecond, false)
	}
	// Host b moves to 25% at 30 s; host a lags behind until 45 s.
	_ = b.SetWeight(2500)
	clock.Advance(15 * time.Second)
	_ = a.SetWeight(2500)
	clock.Advance(20 * time.Second)
	sa, sb := a.Metrics().Snapshot(), b.Metrics().Snapshot()
	if err := sa.Merge(sb); err != nil {
		t.Fatal(err)
	}
	cur := sa.Current()
	if cur.Weight != 2500 || !cur.Start.Equal(canarytest.Epoch.Add(50*time.Second)) {
		t.Fatalf("current: weight %d from %s; want 25%% from the first interval both hosts ran at it", cur.Weight, cur.Start.Sub(canarytest.Epoch))
	}
	other := newSplitter(t, canary.Options{Clock: clock, Window: time.Minute, Resolution: time.Second}).Metrics().Snapshot()
	if err := sa.Merge(other); !errors.Is(err, canary.ErrSnapshot) {
		t.Fatalf("merging resolutions 10s and 1s: %v", err)
	}
	bad := sb.Intervals[len(sb.Intervals)-1]
	bad.Variants[canary.Canary].Errors = 5 // errors without requests
	sb.Intervals[len(sb.Intervals)-1] = bad
	if err := sa.Merge(sb); !errors.Is(err, canary.ErrSnapshot) {
		t.Fatalf("merging an inconsistent snapshot: %v", err)
	}
	var s canary.Snapshot
	if err := json.Unmarshal([]byte(`{"resolution":10000000000,"intervals":[{"start":"2000-01-01T00:00:00Z","variants":[{"requests":1,"errors":2,"latency":[[3,1]]},{},{}]}]}`), &s); !errors.Is(err, canary.ErrSnapshot) {
		t.Fatalf("decoding 2 errors of 1 request: %v", err)
	}
}
