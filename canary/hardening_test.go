package canary_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
)

// TestMirrorHeaderEverySpelling: an Upstream canary never receives a header
// that a CGI-style stack would read as the mirror header, whatever its
// spelling (X_Baton_Mirror, case). The backend reports every header whose
// CGI name is HTTP_X_BATON_MIRROR.
func TestMirrorHeaderEverySpelling(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for k := range r.Header {
			if strings.ReplaceAll(strings.ToUpper(k), "-", "_") == "X_BATON_MIRROR" {
				io.WriteString(w, k+" ")
			}
		}
	}))
	defer backend.Close()
	up, err := canary.NewUpstream(canary.UpstreamOptions{Address: strings.TrimPrefix(backend.URL, "http://")})
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	s := newSplitter(t, canary.Options{Stable: up, Canary: up, Weight: canary.MaxWeight, Mirror: &canary.MirrorOptions{Weight: 1}})
	front := httptest.NewServer(s)
	defer front.Close()
	for _, spelling := range []string{"X_Baton_Mirror", "x_baton_mirror", "X-Baton_Mirror", "x-baton-mirror", "X-BATON-MIRROR"} {
		req, _ := http.NewRequest("GET", front.URL, nil)
		req.Header[spelling] = []string{"1"} // sent as spelled
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if len(b) != 0 {
			t.Errorf("%s: the upstream canary received %s", spelling, b)
		}
	}
}

// TestMirrorAllocatesAsBodyArrives: requests that declare a body of
// MaxBody and send none cost nothing for mirroring until bytes arrive
// (the buffer once grew to the declared length first: +8 MiB each).
func TestMirrorAllocatesAsBodyArrives(t *testing.T) {
	const maxBody = 8 << 20
	ok := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	s := newSplitter(t, canary.Options{Stable: ok, Canary: ok, Mirror: &canary.MirrorOptions{MaxBody: maxBody}})
	const n = 20
	reqs := make([]*http.Request, n)
	for i := range reqs {
		reqs[i] = httptest.NewRequest("POST", "/upload", strings.NewReader("x"))
		reqs[i].ContentLength = maxBody // declared, never sent
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, r := range reqs {
		s.ServeHTTP(httptest.NewRecorder(), r)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > n*maxBody/8 {
		t.Fatalf("%d header-only requests allocated %d MiB", n, grew>>20)
	}
	if st := s.MirrorStats(); st.Skipped != n {
		t.Fatalf("mirror stats %+v: the unread bodies must be skipped", st)
	}
}

// TestMinSamplesAppliesToBoth: 2,000 stable and 50 canary requests (half
// of them errors) with the default MinSamples: the latency test needs 100
// of each variant and must not run on 50 canary requests (nor spend a
// look); the exact error test needs no minimum and fails the canary.
func TestMinSamplesAppliesToBoth(t *testing.T) {
	r := newRig(t, []canary.Step{{Weight: 500, MinDuration: time.Minute}}, canary.AnalysisOptions{})
	m := r.s.Metrics()
	start := r.clock.Now()
	for i := range 2000 {
		m.RecordAt(canary.Stable, start.Add(time.Duration(i)*time.Millisecond), 20*time.Millisecond, false)
	}
	for i := range 50 {
		m.RecordAt(canary.Canary, start.Add(time.Duration(i)*40*time.Millisecond), 20*time.Millisecond, i%2 == 0)
	}
	r.clock.Advance(3 * time.Second)
	a, _ := canary.NewAnalyzer(canary.AnalysisOptions{})
	rep := a.Analyze(m.Snapshot())
	if c := rep.Check("latency"); c.Verdict != canary.Inconclusive || c.Look != 0 || !strings.Contains(c.Detail, "canary has 50 requests, needs 100") {
		t.Fatalf("latency check on 50 canary requests: %+v", c)
	}
	if c := rep.Check("error rate"); c.Verdict != canary.Fail || c.Look != 1 {
		t.Fatalf("error check on 25 of 50 canary errors: %+v", c)
	}
}
