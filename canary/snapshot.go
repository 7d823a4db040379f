package canary

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Group is the sum of the keyed requests of one key group in a Sample.
// The zero value is an empty group.
type Group struct {
	Requests uint64 `json:"n"`
	Errors   uint64 `json:"e,omitempty"`
	Over     uint64 `json:"o,omitempty"`
	// Score is the sum of the requests' latency bucket indexes (16 per
	// doubling), the latency score the analysis compares.
	Score uint64 `json:"s,omitempty"`
}

// Sample is a variant's figures over an interval or a span of intervals.
// Samples add up exactly, whichever splitter recorded them. The zero value
// is an empty sample.
type Sample struct {
	Requests uint64 `json:"requests"` // requests completed
	Errors   uint64 `json:"errors"`   // of which failed (see Classifier)
	// Over counts the requests slower than their interval's tail cut (see
	// MetricsOptions.TailQuantile).
	Over    uint64    `json:"over"`
	Latency Histogram `json:"latency"` // latency of every request counted in Requests
	// Groups holds the keyed requests summed by key group (KeyGroups of
	// them), nil when no request carried a key.
	Groups []Group `json:"groups,omitempty"`
	// UnkeyedSquares is the sum of the squared latency bucket indexes of
	// the requests without a key.
	UnkeyedSquares uint64 `json:"unkeyedSquares,omitempty"`
}

// ErrorRate returns Errors/Requests, or 0 with no requests.
func (s *Sample) ErrorRate() float64 {
	if s.Requests == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Requests)
}

// Add adds o to s.
func (s *Sample) Add(o *Sample) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.Over += o.Over
	s.UnkeyedSquares += o.UnkeyedSquares
	s.Latency.Add(&o.Latency)
	if o.Groups == nil {
		return
	}
	if s.Groups == nil {
		s.Groups = make([]Group, KeyGroups)
	}
	for i, g := range o.Groups {
		s.Groups[i].Requests += g.Requests
		s.Groups[i].Errors += g.Errors
		s.Groups[i].Over += g.Over
		s.Groups[i].Score += g.Score
	}
}

func (s *Sample) validate() error {
	switch {
	case s.Requests != s.Latency.total:
		return fmt.Errorf("%d requests but %d latencies", s.Requests, s.Latency.total)
	case s.Errors > s.Requests:
		return fmt.Errorf("%d errors of %d requests", s.Errors, s.Requests)
	case s.Over > s.Requests:
		return fmt.Errorf("%d slow requests of %d", s.Over, s.Requests)
	case s.Groups != nil && len(s.Groups) != KeyGroups:
		return fmt.Errorf("%d key groups, want %d", len(s.Groups), KeyGroups)
	}
	var n uint64
	for i, g := range s.Groups {
		if g.Errors > g.Requests || g.Over > g.Requests || g.Score > g.Requests*numBuckets {
			return fmt.Errorf("key group %d is inconsistent: %+v", i, g)
		}
		n += g.Requests
	}
	if n > s.Requests {
		return fmt.Errorf("key groups hold %d requests of %d", n, s.Requests)
	}
	return nil
}

// Interval is one interval of a Snapshot. The zero value is an empty
// interval at weight 0.
type Interval struct {
	Start time.Time `json:"start"`
	// Weight is the canary weight in force during the interval.
	Weight uint32 `json:"weight"`
	// Mixed is set when the weight changed during the interval (or, in
	// a merged snapshot, when the hosts ran it at different weights):
	// the analysis never uses it.
	Mixed bool `json:"mixed,omitempty"`
	// Variants holds the stable, canary and mirror samples, in that
	// order (index by Variant).
	Variants [numVariants]Sample `json:"variants"`
}

// Snapshot is a splitter's measurements over its window, interval by
// interval, each interval with the weight it ran at: what the analysis
// reads, and what a fleet of hosts publishes and merges (Merge), so that
// one analysis can judge the traffic of every host. It marshals to JSON
// and back losslessly. The zero value is an empty snapshot.
type Snapshot struct {
	Resolution time.Duration `json:"resolution"`
	// At is when the snapshot was taken; its last interval is partial.
	At time.Time `json:"at"`
	// Weight is the canary weight in force at At.
	Weight uint32 `json:"weight"`
	// Intervals are oldest first, one per Resolution, without gaps.
	Intervals []Interval `json:"intervals"`
}

// SnapshotError says what is wrong with a snapshot. The zero value has no
// reason.
type SnapshotError struct {
	Interval time.Time // the interval at fault; zero when the whole snapshot is
	Reason   string
}

// Error implements error.
func (e *SnapshotError) Error() string {
	if e.Interval.IsZero() {
		return "canary: invalid snapshot: " + e.Reason
	}
	return "canary: invalid snapshot: interval " + e.Interval.Format(time.RFC3339Nano) + ": " + e.Reason
}

// Unwrap returns ErrSnapshot.
func (e *SnapshotError) Unwrap() error { return ErrSnapshot }

// Validate checks that the snapshot's figures are consistent: the same
// checks Merge and UnmarshalJSON make.
func (s *Snapshot) Validate() error {
	if len(s.Intervals) > 0 && s.Resolution <= 0 {
		return &SnapshotError{Reason: fmt.Sprintf("resolution %s is not positive", s.Resolution)}
	}
	if s.Weight > MaxWeight {
		return &SnapshotError{Reason: fmt.Sprintf("weight %d is above %d", s.Weight, MaxWeight)}
	}
	for i := range s.Intervals {
		iv := &s.Intervals[i]
		if i > 0 && !iv.Start.Equal(s.Intervals[i-1].Start.Add(s.Resolution)) {
			return &SnapshotError{Interval: iv.Start, Reason: "intervals are not consecutive"}
		}
		if iv.Weight > MaxWeight {
			return &SnapshotError{Interval: iv.Start, Reason: fmt.Sprintf("weight %d is above %d", iv.Weight, MaxWeight)}
		}
		for v := range iv.Variants {
			if err := iv.Variants[v].validate(); err != nil {
				return &SnapshotError{Interval: iv.Start, Reason: Variant(v).String() + ": " + err.Error()}
			}
		}
	}
	return nil
}

// UnmarshalJSON decodes a snapshot and validates it.
func (s *Snapshot) UnmarshalJSON(b []byte) error {
	type plain Snapshot
	var p plain
	if err := json.Unmarshal(b, &p); err != nil {
		return err
	}
	*s = Snapshot(p)
	return s.Validate()
}

// Merge adds the intervals of others to s, interval by interval: counts,
// histograms and key groups add up exactly, so analysing the merged
// snapshot gives what one splitter that saw every host's traffic would
// have seen. Every snapshot must have the same Resolution (intervals are
// aligned on it). An interval that the snapshots ran at different weights
// becomes Mixed; the merged Weight and At are those of the latest
// snapshot. Merge validates every snapshot and changes nothing when one
// is invalid.
func (s *Snapshot) Merge(others ...*Snapshot) error {
	all := append([]*Snapshot{s}, others...)
	res := time.Duration(0)
	for _, o := range all {
		if err := o.Validate(); err != nil {
			return err
		}
		if len(o.Intervals) == 0 {
			continue
		}
		if res == 0 {
			res = o.Resolution
		} else if o.Resolution != res {
			return &SnapshotError{Reason: fmt.Sprintf("resolutions differ: %s and %s", res, o.Resolution)}
		}
		if o.Intervals[0].Start.UnixNano()%int64(res) != 0 {
			return &SnapshotError{Interval: o.Intervals[0].Start, Reason: "not aligned on the resolution"}
		}
	}
	latest := s
	byStart := map[int64]*Interval{}
	var starts []int64
	for _, o := range all {
		if o.At.After(latest.At) {
			latest = o
		}
		for i := range o.Intervals {
			iv := &o.Intervals[i]
			k := iv.Start.UnixNano()
			m, ok := byStart[k]
			if !ok {
				c := Interval{Start: iv.Start, Weight: iv.Weight, Mixed: iv.Mixed}
				byStart[k] = &c
				starts = append(starts, k)
				m = &c
			} else if m.Weight != iv.Weight || iv.Mixed {
				m.Mixed = true
			}
			for v := range m.Variants {
				m.Variants[v].Add(&iv.Variants[v])
			}
		}
	}
	slices.Sort(starts)
	merged := make([]Interval, 0, len(starts))
	for i, k := range starts {
		// Fill gaps between hosts' windows with empty intervals, so that
		// intervals stay consecutive.
		if i > 0 {
			for g := starts[i-1] + int64(res); g < k; g += int64(res) {
				merged = append(merged, Interval{Start: time.Unix(0, g).UTC(), Mixed: true})
			}
		}
		merged = append(merged, *byStart[k])
	}
	s.Resolution, s.At, s.Weight, s.Intervals = max(res, s.Resolution), latest.At, latest.Weight, merged
	return nil
}

// Window is the sum of consecutive intervals of a Snapshot. The zero value
// is an empty window.
type Window struct {
	Start, End time.Time // the span covered, the last interval partial
	// Weight is the weight the intervals ran at (Current), or the
	// snapshot's weight (All).
	Weight    uint32
	Intervals int
	Variants  [numVariants]Sample
	// first is the start of the first interval summed that holds stable
	// or canary requests (zero without any): while it stays, the window
	// of a later analysis holds all of this one's data and more.
	first time.Time
}

// Of returns the sample of variant v.
func (w *Window) Of(v Variant) *Sample { return &w.Variants[v] }

// Current sums the intervals that ran at the snapshot's weight since it
// last changed: the newest intervals back to (not including) the first one
// that ran at another weight or saw a change. This is what the Analyzer
// compares, so that canary and stable are always measured over the same
// time at the same weight.
func (s *Snapshot) Current() *Window {
	w := &Window{End: s.At, Weight: s.Weight}
	i := len(s.Intervals)
	for i > 0 && !s.Intervals[i-1].Mixed && s.Intervals[i-1].Weight == s.Weight {
		i--
	}
	return s.sum(w, i)
}

// All sums every interval of the snapshot, whatever its weight.
func (s *Snapshot) All() *Window {
	return s.sum(&Window{End: s.At, Weight: s.Weight}, 0)
}

func (s *Snapshot) sum(w *Window, from int) *Window {
	w.Start = w.End
	if from < len(s.Intervals) {
		w.Start = s.Intervals[from].Start
	}
	for _, iv := range s.Intervals[from:] {
		for v := range w.Variants {
			w.Variants[v].Add(&iv.Variants[v])
		}
		if w.first.IsZero() && iv.Variants[Stable].Requests+iv.Variants[Canary].Requests > 0 {
			w.first = iv.Start
		}
		w.Intervals++
	}
	return w
}
