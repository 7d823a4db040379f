package canary

import (
	"encoding/json"
	"fmt"
	"math/bits"
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
// value is an empty histogram. Histograms add up exactly (Add), which is
// what makes snapshots of several splitters mergeable.
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

// quantileBucket returns the bucket holding the q-quantile, or -1 when
// the histogram is empty.
func (h *Histogram) quantileBucket(q float64) int {
	if h.total == 0 {
		return -1
	}
	rank := uint64(q * float64(h.total))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen > rank {
			return i
		}
	}
	return numBuckets - 1
}

// Add merges o into h.
func (h *Histogram) Add(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
}

// moments returns the sum and the sum of squares of the bucket indexes:
// the latency score the analysis compares (see score).
func (h *Histogram) moments() (s, q float64) {
	for i, c := range h.counts {
		if c != 0 {
			f := float64(c) * float64(i)
			s += f
			q += f * float64(i)
		}
	}
	return s, q
}

// MarshalJSON writes the non-empty buckets as [index, count] pairs.
func (h *Histogram) MarshalJSON() ([]byte, error) {
	pairs := make([][2]uint64, 0, 32)
	for i, c := range h.counts {
		if c != 0 {
			pairs = append(pairs, [2]uint64{uint64(i), c})
		}
	}
	return json.Marshal(pairs)
}

// UnmarshalJSON reads what MarshalJSON writes; a bucket index out of range
// or repeated is an error.
func (h *Histogram) UnmarshalJSON(b []byte) error {
	var pairs [][2]uint64
	if err := json.Unmarshal(b, &pairs); err != nil {
		return err
	}
	*h = Histogram{}
	for _, p := range pairs {
		if p[0] >= numBuckets {
			return fmt.Errorf("canary: histogram bucket %d is out of range 0..%d", p[0], numBuckets-1)
		}
		if h.counts[p[0]] != 0 {
			return fmt.Errorf("canary: histogram bucket %d appears twice", p[0])
		}
		h.counts[p[0]] = p[1]
		h.total += p[1]
	}
	return nil
}
