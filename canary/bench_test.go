package canary_test

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/batonhq/baton/canary"
)

// BenchmarkRoute is the routing decision for a request with a key in a
// header, at 5% weight, with the override header enabled (the default).
func BenchmarkRoute(b *testing.B) {
	s := newSplitter(b, canary.Options{Weight: 500, Key: canary.KeyOptions{Header: "X-User"}})
	r := keyed("alice@example.com")
	b.ReportAllocs()
	for b.Loop() {
		_ = s.Route(r)
	}
}

// BenchmarkRecord is recording one outcome in the sliding-window metrics.
func BenchmarkRecord(b *testing.B) {
	m := canary.NewMetrics(canary.MetricsOptions{})
	b.ReportAllocs()
	for b.Loop() {
		m.Record(canary.Canary, 1234*time.Microsecond, false)
	}
}

// BenchmarkRecordKey is recording the outcome of a keyed request: its key
// group's sums too (the splitter's own path reuses its routing hash).
func BenchmarkRecordKey(b *testing.B) {
	m := canary.NewMetrics(canary.MetricsOptions{})
	at := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		m.RecordKeyAt(canary.Canary, "alice@example.com", at, 1234*time.Microsecond, false)
	}
}

// BenchmarkAnalyze is one check: a snapshot of the default 5-minute window
// with keyed traffic in every interval, and its analysis.
func BenchmarkAnalyze(b *testing.B) {
	m := canary.NewMetrics(canary.MetricsOptions{})
	start := time.Now()
	for i := range 30000 {
		at := start.Add(time.Duration(i) * 10 * time.Millisecond)
		v := canary.Stable
		if i%20 == 0 {
			v = canary.Canary
		}
		m.RecordKeyAt(v, "user-"+string(rune('a'+i%26))+string(rune('a'+i%17)), at, time.Duration(1000+i%5000)*time.Microsecond, i%997 == 0)
	}
	end := start.Add(300 * time.Second)
	a, _ := canary.NewAnalyzer(canary.AnalysisOptions{Looks: 1 << 20})
	b.ReportAllocs()
	for b.Loop() {
		_ = a.Analyze(m.SnapshotAt(end))
	}
}

// BenchmarkRecordParallel is Record from every core at once.
func BenchmarkRecordParallel(b *testing.B) {
	m := canary.NewMetrics(canary.MetricsOptions{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Record(canary.Stable, 1234*time.Microsecond, false)
		}
	})
}

type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

var okBody = []byte("ok")

var okHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(okBody)
})

// BenchmarkServeHTTPBaseline calls the handler directly: the cost the
// splitter adds is BenchmarkServeHTTP minus this.
func BenchmarkServeHTTPBaseline(b *testing.B) {
	w := &nopWriter{h: http.Header{}}
	r := keyed("alice@example.com")
	b.ReportAllocs()
	for b.Loop() {
		okHandler.ServeHTTP(w, r)
	}
}

// BenchmarkServeHTTP is the full path with handler targets: route, serve,
// time and record.
func BenchmarkServeHTTP(b *testing.B) {
	s := newSplitter(b, canary.Options{Stable: okHandler, Canary: okHandler, Weight: 500,
		Key: canary.KeyOptions{Header: "X-User"}})
	w := &nopWriter{h: http.Header{}}
	r := keyed("alice@example.com")
	b.ReportAllocs()
	for b.Loop() {
		s.ServeHTTP(w, r)
	}
}

// BenchmarkServeHTTPMirrorSaturated mirrors every stable request with the
// default 16 slots: a benchmark loop outruns the copies, so most are
// dropped (sent/op reports the share sent) and this is the cost of
// mirroring under overload, where it must stay cheap.
func BenchmarkServeHTTPMirrorSaturated(b *testing.B) {
	s := newSplitter(b, canary.Options{Stable: okHandler, Canary: okHandler,
		Mirror: &canary.MirrorOptions{}})
	w := &nopWriter{h: http.Header{}}
	r := httptest.NewRequest("GET", "/", nil)
	b.ReportAllocs()
	for b.Loop() {
		s.ServeHTTP(w, r)
	}
	b.StopTimer()
	_ = s.Shutdown(b.Context())
	st := s.MirrorStats()
	b.ReportMetric(float64(st.Sent)/float64(st.Sent+st.Dropped), "sent/op")
}
