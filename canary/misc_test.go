package canary_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
)

// TestControllerAnalyze is the hook rollout uses: a verdict without action.
func TestControllerAnalyze(t *testing.T) {
	r := newRig(t, []canary.Step{{Weight: 500, MinDuration: time.Second}}, canary.AnalysisOptions{SkipLatency: true})
	if err := r.c.Start(); err != nil {
		t.Fatal(err)
	}
	r.traffic(10*time.Second, 500, 0, 5) // canary fails 20%
	rep, err := r.c.Analyze(context.Background())
	if err != nil || rep.Verdict != canary.Fail || rep.Check("error rate").Look != 1 {
		t.Fatalf("Analyze: %v %s look %d", err, rep.Verdict, rep.Check("error rate").Look)
	}
	if st := r.c.Status(); st.Phase != canary.PhaseRunning || st.Weight != 500 {
		t.Fatalf("Analyze acted: %s at %d", st.Phase, st.Weight)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.c.Analyze(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Analyze with a canceled context = %v", err)
	}
	if _, err := r.c.Evaluate(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Evaluate with a canceled context = %v", err)
	}
}

func TestRecorderReadFrom(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// LimitReader has no WriteTo, so io.Copy goes through ReadFrom.
		if _, err := io.Copy(w, io.LimitReader(strings.NewReader("streamed body"), 8)); err != nil {
			t.Error(err)
		}
	})
	s := newSplitter(t, canary.Options{Stable: h, Canary: h})
	srv := httptest.NewServer(s)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "streamed" {
		t.Fatalf("%d %q", resp.StatusCode, b)
	}
	// Without a ReaderFrom underneath it still copies.
	rec := &nopWriter{h: http.Header{}}
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if n, e := s.Metrics().Totals(canary.Stable); n != 2 || e != 0 {
		t.Fatalf("totals %d/%d", n, e)
	}
}

func TestNames(t *testing.T) {
	for got, want := range map[string]string{
		canary.Stable.String(): "stable", canary.Canary.String(): "canary", canary.Mirror.String(): "mirror",
		canary.Variant(9).String(): "Variant(9)",
		canary.ByWeight.String():   "weight", canary.ByOverride.String(): "override", canary.ByHalt.String(): "halted",
		canary.BySegment.String(): "segment", canary.ByRandom.String(): "random", canary.Reason(99).String(): "unknown",
		canary.PhasePending.String(): "pending", canary.PhaseRunning.String(): "running", canary.PhasePaused.String(): "paused",
		canary.PhaseSucceeded.String(): "succeeded", canary.PhaseRolledBack.String(): "rolled-back",
		canary.Inconclusive.String(): "inconclusive", canary.Pass.String(): "pass", canary.Fail.String(): "fail", canary.Verdict(7).String(): "Verdict(7)",
		canary.EventStep.String():                            "step",
		(&canary.AbortError{Reason: "p99 too high"}).Error(): "canary: rollout aborted: p99 too high",
	} {
		if got != want {
			t.Errorf("%q, want %q", got, want)
		}
	}
	s := newSplitter(t, canary.Options{})
	if err := s.SetWeight(20000); err == nil || err.Error() != "canary: weight 20000 basis points is above 10000 (100%)" {
		t.Errorf("SetWeight error %v", err)
	}
	u, err := canary.NewUpstream(canary.UpstreamOptions{Address: "127.0.0.1:1"})
	if err != nil || u.Address() != "127.0.0.1:1" {
		t.Fatal(err)
	}
	u.Close()
}
