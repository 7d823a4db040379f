package promanalysis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batonhq/baton/rollout"
	"github.com/batonhq/baton/rollout/promanalysis"
)

// fakeProm answers query_range with series computed by value(query, t)
// per le (nil les: one series without le), and records the queries.
type fakeProm struct {
	mu      sync.Mutex
	queries []string
	series  func(q string, t time.Time) map[string]float64 // le or "" -> value
}

func (f *fakeProm) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := r.Form.Get("query")
	f.mu.Lock()
	f.queries = append(f.queries, q)
	f.mu.Unlock()
	start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
	end, _ := strconv.ParseFloat(r.Form.Get("end"), 64)
	step, _ := time.ParseDuration(r.Form.Get("step") + "s")
	if step == 0 {
		s, _ := strconv.ParseFloat(r.Form.Get("step"), 64)
		step = time.Duration(s * float64(time.Second))
	}
	type series struct {
		Metric map[string]string `json:"metric"`
		Values [][2]any          `json:"values"`
	}
	byLE := map[string]*series{}
	var order []string
	for t := time.Unix(int64(start), 0); !t.After(time.Unix(int64(end), 0)); t = t.Add(step) {
		for le, v := range f.series(q, t) {
			s := byLE[le]
			if s == nil {
				s = &series{Metric: map[string]string{}}
				if le != "" {
					s.Metric["le"] = le
				}
				byLE[le] = s
				order = append(order, le)
			}
			s.Values = append(s.Values, [2]any{float64(t.Unix()), strconv.FormatFloat(v, 'g', -1, 64)})
		}
	}
	out := []*series{}
	for _, le := range order {
		out = append(out, byLE[le])
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": out}})
}

// TestWeightCutAndEscaping: before the weight change (at the 25th step)
// the canary failed half its requests; the analysis compares only the
// steps after the change, leaves out the step of the change, and passes.
// A label value that tries to end the selector stays one literal.
func TestWeightCutAndEscaping(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	change := now.Add(-25 * 10 * time.Second)
	f := &fakeProm{series: func(q string, at time.Time) map[string]float64 {
		canary := strings.Contains(q, `variant="canary"`)
		after := at.After(change)
		switch {
		case strings.Contains(q, "weight_ratio"):
			if after {
				return map[string]float64{"": 0.25}
			}
			return map[string]float64{"": 0.05}
		case strings.Contains(q, "requests_total"):
			return map[string]float64{"": 1000}
		case strings.Contains(q, "errors_total"):
			if canary && !after {
				return map[string]float64{"": 500}
			}
			return map[string]float64{"": 1}
		case strings.Contains(q, "_bucket"):
			return map[string]float64{"0.01": 200, "0.02": 900, "+Inf": 1000}
		}
		return nil
	}}
	srv := httptest.NewServer(f)
	defer srv.Close()
	a, err := promanalysis.New(promanalysis.Options{Address: srv.URL, Step: 10 * time.Second, Window: 10 * time.Minute,
		Labels: map[string]string{"job": `api"} or vector(1) #`}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := a.Measure(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Verdict != rollout.Pass {
		t.Fatalf("verdict %s: %s", rep.Verdict, rep.Reason)
	}
	// 25 steps after the change, the first of them left out.
	if rep.Canary.Requests != 24*1000 || rep.Canary.Errors != 24 || rep.Weight != 0.25 {
		t.Fatalf("canary %+v at weight %v, want 24 steps at 0.25", rep.Canary, rep.Weight)
	}
	if want := change.Add(10 * time.Second); !rep.From.Equal(want) {
		t.Errorf("compared from %s, want %s", rep.From, want)
	}
	if rep.Stable.P50 < 10*time.Millisecond || rep.Stable.P50 > 20*time.Millisecond {
		t.Errorf("p50 %s, want within the (10ms, 20ms] bucket", rep.Stable.P50)
	}
	// What the rollout records for its console.
	_, _, m, err := a.AnalyzeMeasured(context.Background())
	if err != nil || m.Weight != 2500 || m.Canary.Requests != 24000 || m.Canary.Errors != 24 || !m.WindowStart.Equal(rep.From) {
		t.Errorf("measurement %+v, %v", m, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, q := range f.queries {
		if !strings.Contains(q, `job="api\"} or vector(1) #"`) {
			t.Errorf("query %s does not hold the label value as one quoted literal", q)
		}
	}
	want := fmt.Sprintf(`sum(increase(baton_canary_requests_total{job=%s,variant="stable"}[10s]))`, promanalysis.QuoteLabelValue(`api"} or vector(1) #`))
	if f.queries[1] != want {
		t.Errorf("requests query %s, want %s", f.queries[1], want)
	}
}
