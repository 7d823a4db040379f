package canary

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"time"
)

// Latency histogram layout: log-linear, 16 linear sub-buckets per power of
// two (relative bucket width at most 6.25%), in units of 1.024 µs up to
// about 137 s; longer latencies land in the last bucket.
const (
	subBits    = 4
	subCount   = 1 << subBits
	unitShift  = 10 // 1 unit = 1024 ns
	maxUnits   = 1 << 27
	numBuckets = (27-subBits)*subCount + subCount
)

func bucketOf(d time.Duration) int {
	if d <= 0 {
		return 0
	}
	v := uint64(d) >> unitShift
	if v >= maxUnits {
		v = maxUnits - 1
	}
	if v < subCount {
		return int(v)
	}
	e := bits.Len64(v) - subBits - 1
	return (e+1)<<subBits | int((v>>e)&(subCount-1))
}

// bucketLow returns the smallest latency that falls in bucket i.
func bucketLow(i int) time.Duration {
	if i < subCount {
		return time.Duration(i) << unitShift
	}
	e := i>>subBits - 1
	m := i & (subCount - 1)
	return time.Duration(subCount+m) << e << unitShift
}

// Histogram is a snapshot of latency counts in log-linear buckets. The zero
// value is an empty histogram.
type Histogram struct {
	counts [numBuckets]uint64
	total  uint64
}

// Count returns the number of latencies in the histogram.
func (h *Histogram) Count() uint64 { return h.total }

// Quantile returns the latency below which a share q (0..1) of the
// observations fall, interpolated linearly within its bucket (so within
// 6.25% of the true value above 16 µs, usually much closer); it returns 0
// for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.total == 0 {
		return 0
	}
	q = min(max(q, 0), 1)
	rank := uint64(q * float64(h.total))
	if rank >= h.total {
		rank = h.total - 1
	}
	var seen uint64
	for i, c := range h.counts {
		if seen+c > rank {
			lo := bucketLow(i)
			if i == numBuckets-1 {
				return lo
			}
			frac := (float64(rank-seen) + 0.5) / float64(c)
			return lo + time.Duration(frac*float64(bucketLow(i+1)-lo))
		}
		seen += c
	}
	return bucketLow(numBuckets - 1)
}

// Add merges o into h.
func (h *Histogram) Add(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// Sample is a variant's figures over a window. The zero value is an empty
// sample.
type Sample struct {
	Requests uint64    // requests completed in the window
	Errors   uint64    // of which failed: 5xx responses, recovered panics, proxy errors
	Latency  Histogram // latency of every request counted in Requests
}

// ErrorRate returns Errors/Requests, or 0 with no requests.
func (s *Sample) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// Window is a snapshot of every variant over the same span of time. The
// zero value is an empty window.
type Window struct {
	Start, End time.Time // the span covered: whole intervals, the last one partial
	Variants   [numVariants]Sample
}

// Of returns the sample of variant v.
func (w *Window) Of(v Variant) *Sample { return &w.Variants[v] }

// slot is one interval of one variant. Its request count is the sum of
// its histogram, which saves an atomic add per request.
type slot struct {
	errors atomic.Uint64
	hist   [numBuckets]atomic.Uint64
}

func (s *slot) reset() {
	s.errors.Store(0)
	for i := range s.hist {
		s.hist[i].Store(0)
	}
}

// series is one variant's ring of per-interval slots. Recording is lock-free
// and allocation-free; only the first recorder of a new interval takes mu to
// clear the slots ahead, so that a slot is clean before anyone writes to it.
type series struct {
	cur      atomic.Int64 // newest interval in use; slot cur+1 is already clean
	mu       sync.Mutex   // serialises advancing cur and clearing slots
	slots    []slot
	requests atomic.Uint64 // since creation, for exported counters
	errors   atomic.Uint64
	canceled atomic.Uint64
}

// Metrics keeps, per variant, cumulative request and error counts and a
// sliding window of requests, errors and latency histograms. Memory is fixed
// at creation: about 3 KiB per interval of the window per variant. Use
// NewMetrics; the zero value is not usable.
type Metrics struct {
	clock  Clock
	res    int64 // interval length in nanoseconds
	window int   // intervals in the window, the current partial one included
	series [numVariants]series
}

// Defaults for MetricsOptions.
const (
	// DefaultWindow is the span the analysis compares the variants over.
	DefaultWindow = 5 * time.Minute
	// DefaultResolution is the length of one interval of the window: the
	// window slides by this step.
	DefaultResolution = 10 * time.Second
)

// MetricsOptions configures NewMetrics. Zero fields mean the defaults.
type MetricsOptions struct {
	// Window is the span of the sliding window; zero means DefaultWindow.
	// It is rounded up to whole intervals.
	Window time.Duration
	// Resolution is the interval the window advances by; zero means
	// DefaultResolution, and it is capped at Window.
	Resolution time.Duration
	// Clock tells the time of Record; nil means the system clock.
	Clock Clock
}

// NewMetrics returns empty per-variant metrics.
func NewMetrics(o MetricsOptions) *Metrics {
	if o.Window <= 0 {
		o.Window = DefaultWindow
	}
	if o.Resolution <= 0 {
		o.Resolution = DefaultResolution
	}
	o.Resolution = min(o.Resolution, o.Window)
	w := int((o.Window + o.Resolution - 1) / o.Resolution)
	m := &Metrics{clock: clockOr(o.Clock), res: int64(o.Resolution), window: w}
	for i := range m.series {
		// Two spare slots: the one being cleared ahead, and stragglers
		// still writing the interval that just ended.
		m.series[i].slots = make([]slot, w+2)
		m.series[i].cur.Store(-1 << 62)
	}
	return m
}

// Window returns the span the sliding window covers.
func (m *Metrics) Window() time.Duration { return time.Duration(m.res) * time.Duration(m.window) }

// Record counts one completed request of variant v, its latency and whether
// it failed, at the clock's current time. It does not allocate and takes no
// lock except once per interval per variant.
func (m *Metrics) Record(v Variant, latency time.Duration, failed bool) {
	m.RecordAt(v, m.clock.Now(), latency, failed)
}

// RecordAt is Record at a given time, for callers that already read the
// clock and for simulations. Times older than the window are not counted in
// it (they still count in the totals).
func (m *Metrics) RecordAt(v Variant, at time.Time, latency time.Duration, failed bool) {
	if v >= numVariants {
		return
	}
	s := &m.series[v]
	s.requests.Add(1)
	if failed {
		s.errors.Add(1)
	}
	n := at.UnixNano() / m.res
	sl := m.slot(s, n)
	if sl == nil {
		return
	}
	sl.hist[bucketOf(latency)].Add(1)
	if failed {
		sl.errors.Add(1)
	}
}

func (m *Metrics) slot(s *series, n int64) *slot {
	c := s.cur.Load()
	if n > c {
		m.advance(s, n)
		c = n
	}
	if n <= c-int64(m.window) {
		return nil // older than the window: its slot may be reused
	}
	return &s.slots[mod(n, len(s.slots))]
}

// advance makes n the newest interval, clearing the slots of the intervals
// from the old newest+2 to n+1, so that slot n and the one after it are clean.
func (m *Metrics) advance(s *series, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cur.Load()
	if n <= c {
		return
	}
	ring := int64(len(s.slots))
	from := max(c+2, n+2-ring)
	for k := from; k <= n+1; k++ {
		s.slots[mod(k, len(s.slots))].reset()
	}
	s.cur.Store(n)
}

func mod(n int64, l int) int {
	r := n % int64(l)
	if r < 0 {
		r += int64(l)
	}
	return int(r)
}

// Totals returns the requests and errors of variant v since the metrics were
// created.
func (m *Metrics) Totals(v Variant) (requests, errors uint64) {
	if v >= numVariants {
		return 0, 0
	}
	s := &m.series[v]
	return s.requests.Load(), s.errors.Load()
}

// RecordCanceled counts a request of variant v that failed because its
// client went away (see Splitter.ServeHTTP). It is kept apart from
// Record's requests and errors, so the analysis never sees it: a client
// that gives up says nothing about the version that was serving it.
func (m *Metrics) RecordCanceled(v Variant) {
	if v < numVariants {
		m.series[v].canceled.Add(1)
	}
}

// Canceled returns the requests of variant v recorded by RecordCanceled
// since the metrics were created.
func (m *Metrics) Canceled(v Variant) uint64 {
	if v >= numVariants {
		return 0
	}
	return m.series[v].canceled.Load()
}

// Snapshot returns every variant's figures over the window that ends at the
// clock's current time.
func (m *Metrics) Snapshot() *Window { return m.SnapshotAt(m.clock.Now()) }

// SnapshotAt returns every variant's figures over the window that ends at
// at. All variants cover the same intervals, so they can be compared. A
// snapshot taken while requests complete is consistent per counter, not
// across counters (a failing request may be in Requests but not yet in
// Errors).
func (m *Metrics) SnapshotAt(at time.Time) *Window {
	n := at.UnixNano() / m.res
	first := n - int64(m.window) + 1
	w := &Window{
		Start: time.Unix(0, first*m.res),
		End:   at,
	}
	for v := range w.Variants {
		s := &m.series[v]
		c := s.cur.Load()
		out := &w.Variants[v]
		// Intervals after cur have no data yet; slots before c-window
		// may already hold newer intervals.
		for k := max(first, c-int64(m.window)+1); k <= min(n, c); k++ {
			sl := &s.slots[mod(k, len(s.slots))]
			out.Errors += sl.errors.Load()
			for i := range sl.hist {
				if x := sl.hist[i].Load(); x != 0 {
					out.Latency.counts[i] += x
					out.Latency.total += x
				}
			}
		}
		out.Requests = out.Latency.total
	}
	return w
}
