package canary

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/batonhq/baton/internal/bucket"
)

// KeyGroups is the number of groups into which keyed requests are summed
// per interval and variant: a key always falls in the same group (on every
// host), so the spread between groups measures how much requests of one
// key resemble each other, which the analysis needs (see the package
// documentation, Unit of assignment).
const KeyGroups = 64

// keyGroupSalt is hashed before a key recorded with RecordKeyAt.
const keyGroupSalt = "canary-group"

// groupOf maps a key's hash to its group. The splitter's hash decides the
// variant from its high bits (bucket.Of); the group takes the low bits, so
// that every group holds keys of both variants.
func groupOf(h uint32) int { return int(h % KeyGroups) }

// groupCells are the atomic sums of one key group.
type groupCells struct {
	requests, errors, over, score atomic.Uint64
}

// slot is one interval of one variant. Its request count is the sum of
// its histogram, which saves an atomic add per request.
type slot struct {
	errors atomic.Uint64
	over   atomic.Uint64 // requests above the interval's tail cut
	sq0    atomic.Uint64 // sum of squared bucket indexes of unkeyed requests
	hist   [numBuckets]atomic.Uint64
	groups []groupCells // nil for the mirror variant
}

func (s *slot) reset() {
	s.errors.Store(0)
	s.over.Store(0)
	s.sq0.Store(0)
	for i := range s.hist {
		s.hist[i].Store(0)
	}
	for i := range s.groups {
		g := &s.groups[i]
		g.requests.Store(0)
		g.errors.Store(0)
		g.over.Store(0)
		g.score.Store(0)
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

type weightChange struct {
	at     int64 // Unix nanoseconds
	weight uint32
}

// Metrics keeps, per variant, cumulative request and error counts and a
// sliding window of per-interval figures: requests, errors, a latency
// histogram, the requests above the interval's tail cut, and per key group
// sums. It also remembers when the weight changed, so that a Snapshot can
// say which intervals ran at which weight. Memory is fixed at creation:
// about 5 KiB per interval of the window per analysed variant. Use
// NewMetrics; the zero value is not usable.
type Metrics struct {
	clock  Clock
	res    int64 // interval length in nanoseconds
	window int   // intervals in the window, the current partial one included
	tailQ  float64
	series [numVariants]series

	cutMu   sync.Mutex
	cuts    []atomic.Int64 // per interval: n<<cutBits | cut bucket
	lastCut int

	wmu     sync.Mutex
	weight0 uint32         // weight before the first change kept
	changes []weightChange // oldest first, pruned to the window
}

const cutBits = 10 // numBuckets < 1<<cutBits

// Defaults for MetricsOptions.
const (
	// DefaultWindow is the longest span the analysis compares the
	// variants over.
	DefaultWindow = 5 * time.Minute
	// DefaultResolution is the length of one interval of the window: the
	// window slides by this step.
	DefaultResolution = 10 * time.Second
	// DefaultTailQuantile is the latency quantile whose exceedances the
	// tail check compares.
	DefaultTailQuantile = 0.99
)

// MetricsOptions configures NewMetrics. Zero fields mean the defaults.
type MetricsOptions struct {
	// Window is the span of the sliding window; zero means DefaultWindow.
	// It is rounded up to whole intervals.
	Window time.Duration
	// Resolution is the interval the window advances by; zero means
	// DefaultResolution, and it is capped at Window.
	Resolution time.Duration
	// TailQuantile sets each interval's tail cut: the latency at this
	// quantile of the previous interval's stable and canary requests
	// together; zero means DefaultTailQuantile.
	TailQuantile float64
	// Weight is the canary weight in force at creation (a Splitter
	// reports its changes); zero means 0.
	Weight uint32
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
	if o.TailQuantile <= 0 || o.TailQuantile >= 1 {
		o.TailQuantile = DefaultTailQuantile
	}
	o.Resolution = min(o.Resolution, o.Window)
	w := int((o.Window + o.Resolution - 1) / o.Resolution)
	m := &Metrics{clock: clockOr(o.Clock), res: int64(o.Resolution), window: w, tailQ: o.TailQuantile,
		weight0: o.Weight, lastCut: numBuckets - 1}
	for i := range m.series {
		// Two spare slots: the one being cleared ahead, and stragglers
		// still writing the interval that just ended.
		m.series[i].slots = make([]slot, w+2)
		if Variant(i) != Mirror {
			for k := range m.series[i].slots {
				m.series[i].slots[k].groups = make([]groupCells, KeyGroups)
			}
		}
		m.series[i].cur.Store(-1 << 62)
	}
	m.cuts = make([]atomic.Int64, w+2)
	for i := range m.cuts {
		m.cuts[i].Store(-1 << 62)
	}
	return m
}

// Window returns the span the sliding window covers.
func (m *Metrics) Window() time.Duration { return time.Duration(m.res) * time.Duration(m.window) }

// Resolution returns the length of one interval.
func (m *Metrics) Resolution() time.Duration { return time.Duration(m.res) }

// Record counts one completed request of variant v that carried no sticky
// key, its latency and whether it failed, at the clock's current time. It
// does not allocate and takes no lock except once per interval per variant.
func (m *Metrics) Record(v Variant, latency time.Duration, failed bool) {
	m.record(v, m.clock.Now(), -1, latency, failed)
}

// RecordAt is Record at a given time, for callers that already read the
// clock and for simulations. Times older than the window are not counted in
// it (they still count in the totals).
func (m *Metrics) RecordAt(v Variant, at time.Time, latency time.Duration, failed bool) {
	m.record(v, at, -1, latency, failed)
}

// RecordKeyAt is RecordAt for a request routed by its sticky key: the
// analysis then treats the key, not the request, as the unit that was
// assigned to the variant. The Splitter records keyed requests this way.
func (m *Metrics) RecordKeyAt(v Variant, key string, at time.Time, latency time.Duration, failed bool) {
	m.record(v, at, groupOf(bucket.Hash(keyGroupSalt, key)), latency, failed)
}

func (m *Metrics) record(v Variant, at time.Time, group int, latency time.Duration, failed bool) {
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
	b := bucketOf(latency)
	sl.hist[b].Add(1)
	over := b > m.cut(n)
	if failed {
		sl.errors.Add(1)
	}
	if over {
		sl.over.Add(1)
	}
	if group < 0 || sl.groups == nil {
		sl.sq0.Add(uint64(b * b))
		return
	}
	g := &sl.groups[group]
	g.requests.Add(1)
	g.score.Add(uint64(b))
	if failed {
		g.errors.Add(1)
	}
	if over {
		g.over.Add(1)
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

// cut returns the tail cut of interval n: requests in a higher bucket count
// as over. The cut is fixed when the interval is first recorded into, from
// the previous interval alone, so it cannot depend on how the requests of
// its own interval were split; that keeps the exact tail test exact.
func (m *Metrics) cut(n int64) int {
	c := m.cuts[mod(n, len(m.cuts))].Load()
	if c>>cutBits == n {
		return int(c & (1<<cutBits - 1))
	}
	m.cutMu.Lock()
	defer m.cutMu.Unlock()
	c = m.cuts[mod(n, len(m.cuts))].Load()
	switch {
	case c>>cutBits == n:
		return int(c & (1<<cutBits - 1))
	case c>>cutBits > n:
		return m.lastCut // a straggler of an interval whose cut was recycled
	}
	var prev Histogram
	for _, v := range []Variant{Stable, Canary} {
		m.addInterval(&m.series[v], n-1, &prev, nil)
	}
	if b := prev.quantileBucket(m.tailQ); b >= 0 {
		m.lastCut = b
	}
	m.cuts[mod(n, len(m.cuts))].Store(n<<cutBits | int64(m.lastCut))
	return m.lastCut
}

func mod(n int64, l int) int {
	r := n % int64(l)
	if r < 0 {
		r += int64(l)
	}
	return int(r)
}

// noteWeight records that the weight became w at time at.
func (m *Metrics) noteWeight(at time.Time, w uint32) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	last := m.weight0
	if k := len(m.changes); k > 0 {
		last = m.changes[k-1].weight
	}
	if w == last {
		return
	}
	m.changes = append(m.changes, weightChange{at: at.UnixNano(), weight: w})
	// Keep the changes inside the window, and the one in force at its
	// start.
	oldest := at.UnixNano() - int64(m.window+2)*m.res
	drop := 0
	for drop+1 < len(m.changes) && m.changes[drop+1].at <= oldest {
		drop++
	}
	if drop > 0 {
		m.weight0 = m.changes[drop-1].weight
		m.changes = append(m.changes[:0], m.changes[drop:]...)
	}
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

// Snapshot returns every variant's figures, interval by interval, over the
// window that ends at the clock's current time.
func (m *Metrics) Snapshot() *Snapshot { return m.SnapshotAt(m.clock.Now()) }

// SnapshotAt returns every variant's figures, interval by interval, over
// the window that ends at at, each interval with the weight it ran at. A
// snapshot taken while requests complete is consistent per counter, not
// across counters (a failing request may be in Requests but not yet in
// Errors).
func (m *Metrics) SnapshotAt(at time.Time) *Snapshot {
	first, tags, weight := m.tags(at)
	s := &Snapshot{Resolution: time.Duration(m.res), At: at, Weight: weight, Intervals: make([]Interval, len(tags))}
	for i, tg := range tags {
		k := first + int64(i)
		iv := &s.Intervals[i]
		iv.Start, iv.Weight, iv.Mixed = time.Unix(0, k*m.res).UTC(), tg.weight, tg.mixed
		for v := range iv.Variants {
			m.addInterval(&m.series[v], k, &iv.Variants[v].Latency, &iv.Variants[v])
		}
	}
	return s
}

// currentAt is SnapshotAt(at).Current() without the per-interval copies:
// what a Controller analyses.
func (m *Metrics) currentAt(at time.Time) *Window {
	first, tags, weight := m.tags(at)
	i := len(tags)
	for i > 0 && !tags[i-1].mixed && tags[i-1].weight == weight {
		i--
	}
	w := &Window{Start: at, End: at, Weight: weight, Intervals: len(tags) - i}
	if i < len(tags) {
		w.Start = time.Unix(0, (first+int64(i))*m.res).UTC()
	}
	for k := first + int64(i); k < first+int64(len(tags)); k++ {
		for v := range w.Variants {
			m.addInterval(&m.series[v], k, &w.Variants[v].Latency, &w.Variants[v])
		}
		if w.first.IsZero() && w.Variants[Stable].Requests+w.Variants[Canary].Requests > 0 {
			w.first = time.Unix(0, k*m.res).UTC()
		}
	}
	return w
}

type intervalTag struct {
	weight uint32
	mixed  bool
}

// tags returns the first interval of the window ending at at, the weight
// and mixing of each of its intervals, and the weight in force at at.
func (m *Metrics) tags(at time.Time) (first int64, tags []intervalTag, weight uint32) {
	n := at.UnixNano() / m.res
	first = n - int64(m.window) + 1
	m.wmu.Lock()
	weight0, changes := m.weight0, append([]weightChange(nil), m.changes...)
	m.wmu.Unlock()
	weight = weight0
	for _, c := range changes {
		if c.at <= at.UnixNano() {
			weight = c.weight
		}
	}
	tags = make([]intervalTag, 0, m.window)
	for k := first; k <= n; k++ {
		start, end := k*m.res, (k+1)*m.res
		tg := intervalTag{weight: weight0}
		for _, c := range changes {
			switch {
			case c.at <= start:
				tg.weight = c.weight
			case c.at < end:
				tg.mixed = true
			}
		}
		tags = append(tags, tg)
	}
	return first, tags, weight
}

// addInterval adds interval k of a series to h and, when out is not nil,
// its counts and groups to out (whose Latency must be h).
func (m *Metrics) addInterval(s *series, k int64, h *Histogram, out *Sample) {
	c := s.cur.Load()
	// Intervals after cur have no data yet; slots before c-window may
	// already hold newer intervals.
	if k > c || k <= c-int64(m.window) {
		return
	}
	sl := &s.slots[mod(k, len(s.slots))]
	for i := range sl.hist {
		if x := sl.hist[i].Load(); x != 0 {
			h.counts[i] += x
			h.total += x
		}
	}
	if out == nil {
		return
	}
	out.Requests = h.total
	out.Errors += sl.errors.Load()
	out.Over += sl.over.Load()
	out.UnkeyedSquares += sl.sq0.Load()
	for i := range sl.groups {
		g := &sl.groups[i]
		n := g.requests.Load()
		if n == 0 {
			continue
		}
		if out.Groups == nil {
			out.Groups = make([]Group, KeyGroups)
		}
		out.Groups[i].Requests += n
		out.Groups[i].Errors += g.errors.Load()
		out.Groups[i].Over += g.over.Load()
		out.Groups[i].Score += g.score.Load()
	}
}
