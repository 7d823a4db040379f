package promanalysis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"text/template"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// span is the range of one analysis: points at start, start+step, ...,
// end, each an increase() over the step before it.
type span struct {
	r    v1.Range
	from model.Time // first point compared (after the last weight change)
}

func (a *Analyzer) span() span {
	o := &a.opts
	// Aligning the end to the step makes repeated analyses add up the
	// same steps, and the evaluation points of every query coincide.
	end := o.Now().Truncate(o.Step)
	start := end.Add(-o.Window + o.Step)
	r := v1.Range{Start: start, End: end, Step: o.Step}
	return span{r: r, from: model.TimeFromUnixNano(start.UnixNano())}
}

func (a *Analyzer) data(variant string) templateData {
	o := &a.opts
	common := matchers(o.Labels)
	with := make(map[string]string, len(o.Labels)+1)
	for k, v := range o.Labels {
		with[k] = v
	}
	with[o.VariantLabel] = variant
	m := matchers(with)
	return templateData{
		Selector: "{" + m + "}", Matchers: m,
		Common: "{" + common + "}", CommonMatchers: common,
		Variant: QuoteLabelValue(variant), Range: promDuration(o.Step),
	}
}

// query runs one range query and returns its series.
func (a *Analyzer) query(ctx context.Context, what string, t *template.Template, d templateData, s span) (model.Matrix, error) {
	q, err := render(t, d)
	if err != nil {
		return nil, &QueryError{What: what, Query: t.Name(), Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, a.opts.Timeout)
	defer cancel()
	val, _, err := a.api.QueryRange(ctx, q, s.r)
	if err != nil {
		if ctx.Err() != nil && errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %s: %w", a.opts.Timeout, err)
		}
		return nil, &QueryError{What: what, Query: q, Err: err}
	}
	m, ok := val.(model.Matrix)
	if !ok {
		return nil, &QueryError{What: what, Query: q, Err: fmt.Errorf("returned a %s, want a range vector", val.Type())}
	}
	if len(m) > maxSeries {
		return nil, &QueryError{What: what, Query: q, Err: fmt.Errorf("returned %d series, more than %d: aggregate it (sum)", len(m), maxSeries)}
	}
	return m, nil
}

// total adds up the values of every series at the points from s.from on.
func total(m model.Matrix, s span) float64 {
	var t float64
	for _, ss := range m {
		for _, p := range ss.Values {
			if p.Timestamp >= s.from && !math.IsNaN(float64(p.Value)) {
				t += float64(p.Value)
			}
		}
	}
	return t
}

// mean is the average of the values from s.from on, over every point of
// every series; ok is false without any.
func mean(m model.Matrix, s span) (v float64, ok bool) {
	var t float64
	n := 0
	for _, ss := range m {
		for _, p := range ss.Values {
			if p.Timestamp >= s.from && !math.IsNaN(float64(p.Value)) && !math.IsInf(float64(p.Value), 0) {
				t += float64(p.Value)
				n++
			}
		}
	}
	if n == 0 {
		return 0, false
	}
	return t / float64(n), true
}

// cut moves s.from past the last change of the weight series: the points
// since then ran at one weight, and the point whose step holds the change
// is left out, as it mixes two weights. It returns the current weight
// (0..1), or -1 when the query returned nothing.
func cut(m model.Matrix, s *span) (float64, error) {
	if len(m) == 0 {
		return -1, nil
	}
	if len(m) > 1 {
		return 0, fmt.Errorf("returned %d series, want one (aggregate it: max)", len(m))
	}
	v := m[0].Values
	if len(v) == 0 {
		return -1, nil
	}
	step := model.Duration(s.r.Step)
	w := float64(v[len(v)-1].Value)
	j := len(v) - 1
	for j > 0 && math.Abs(float64(v[j-1].Value)-w) < 1e-9 && v[j].Timestamp.Sub(v[j-1].Timestamp) == time.Duration(step) {
		j--
	}
	switch {
	case j > 0:
		// v[j-1] is another weight, or a gap in the series: v[j]'s step
		// may hold the change.
		s.from = v[j].Timestamp.Add(s.r.Step)
	case v[0].Timestamp > s.from:
		// The series starts inside the window (the process or the
		// gauge is new): its first step may be partial.
		s.from = v[0].Timestamp.Add(s.r.Step)
	}
	return w, nil
}

// histogram is a latency distribution from cumulative buckets: bounds
// ascending (the last +Inf) and the requests in each bucket.
type histogram struct {
	le     []float64
	counts []float64
	total  float64
}

// buckets adds up each "le" series from s.from on and turns cumulative
// counts into counts per bucket; increase()'s extrapolation can make
// cumulative counts dip, which is clipped at zero.
func buckets(m model.Matrix, s span) (histogram, error) {
	cum := map[float64]float64{}
	for _, ss := range m {
		raw, ok := ss.Metric["le"]
		if !ok {
			return histogram{}, errors.New("a series has no le label (use sum by (le))")
		}
		le, err := strconv.ParseFloat(string(raw), 64)
		if err != nil {
			return histogram{}, fmt.Errorf("le=%q is not a number", raw)
		}
		cum[le] += total(model.Matrix{ss}, s)
	}
	var h histogram
	for le := range cum {
		h.le = append(h.le, le)
	}
	slices.Sort(h.le)
	if len(h.le) > 0 && !math.IsInf(h.le[len(h.le)-1], 1) {
		return histogram{}, errors.New("no le=\"+Inf\" bucket")
	}
	prev := 0.0
	for _, le := range h.le {
		c := max(cum[le], prev)
		h.counts = append(h.counts, c-prev)
		prev = c
	}
	h.total = prev
	return h, nil
}

// score is the representative log2 latency of bucket i: the geometric
// middle of its bounds; the first and the +Inf bucket are taken half a
// neighbouring bucket's ratio beyond their finite bound.
func (h *histogram) score(i int) float64 {
	n := len(h.le)
	switch {
	case n == 1:
		return 0
	case i == 0:
		lo, hi := h.le[0], h.le[1]
		if n == 2 { // only le and +Inf
			return math.Log2(lo)
		}
		return math.Log2(lo) - (math.Log2(hi)-math.Log2(lo))/2
	case i == n-1:
		lo := h.le[n-2]
		if n == 2 {
			return math.Log2(lo)
		}
		return math.Log2(lo) + (math.Log2(lo)-math.Log2(h.le[n-3]))/2
	}
	lo := math.Max(h.le[i-1], math.SmallestNonzeroFloat64)
	return (math.Log2(lo) + math.Log2(h.le[i])) / 2
}

// moments returns the mean and variance of the log2 latency.
func (h *histogram) moments() (mean, variance float64) {
	if h.total <= 0 {
		return 0, 0
	}
	var s, q float64
	for i, c := range h.counts {
		x := h.score(i)
		s += c * x
		q += c * x * x
	}
	mean = s / h.total
	return mean, max(q/h.total-mean*mean, 0)
}

// quantile interpolates linearly within the bucket holding q, as
// histogram_quantile does; 0 for an empty histogram.
func (h *histogram) quantile(q float64) time.Duration {
	if h.total <= 0 {
		return 0
	}
	rank := q * h.total
	seen := 0.0
	for i, c := range h.counts {
		if seen+c >= rank && c > 0 {
			if math.IsInf(h.le[i], 1) {
				if i == 0 {
					return 0
				}
				return seconds(h.le[i-1])
			}
			lo := 0.0
			if i > 0 {
				lo = h.le[i-1]
			}
			return seconds(lo + (h.le[i]-lo)*(rank-seen)/c)
		}
		seen += c
	}
	return seconds(h.le[max(len(h.le)-2, 0)])
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
