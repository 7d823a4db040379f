package stats

import "math"

// MannWhitney is the result of a Mann-Whitney U test of group A against
// group B. The zero value means no test was possible (P is then 0, so
// callers must check N).
type MannWhitney struct {
	U    float64 // U statistic of A: pairs (a, b) with a > b, ties counting half
	AUC  float64 // U / (nA*nB): P(A > B) + P(A = B)/2, 0.5 when alike
	Z    float64 // standardised U with continuity and tie corrections
	P    float64 // one-sided p-value for "A tends to be larger than B"
	NA   uint64  // observations in A
	NB   uint64  // observations in B
	Tied bool    // true when every observation fell in one bin (P is 1)
}

// MannWhitneyBinned runs the one-sided Mann-Whitney U test that values of A
// tend to be larger than values of B, from counts per ordered bin: a[i] and
// b[i] count the observations of each group in bin i, bins sorted by value.
// Observations sharing a bin are ties. The normal approximation is used with
// the tie-corrected variance; it is sound once both groups have a few dozen
// observations, and callers guard on NA and NB. Bins beyond the shorter
// slice count as empty.
func MannWhitneyBinned(a, b []uint64) MannWhitney {
	var r MannWhitney
	var below float64 // B observations in bins below the current one
	var tieSum float64
	n := max(len(a), len(b))
	for i := range n {
		var ai, bi uint64
		if i < len(a) {
			ai = a[i]
		}
		if i < len(b) {
			bi = b[i]
		}
		if ai == 0 && bi == 0 {
			continue
		}
		r.U += float64(ai) * (below + float64(bi)/2)
		below += float64(bi)
		r.NA += ai
		r.NB += bi
		t := float64(ai + bi)
		tieSum += t*t*t - t
	}
	if r.NA == 0 || r.NB == 0 {
		r.P = 1
		return r
	}
	na, nb := float64(r.NA), float64(r.NB)
	N := na + nb
	r.AUC = r.U / (na * nb)
	variance := na * nb / 12 * ((N + 1) - tieSum/(N*(N-1)))
	if variance <= 0 {
		r.Tied = true
		r.P = 1
		return r
	}
	d := r.U - na*nb/2
	// Continuity correction towards the null.
	switch {
	case d > 0.5:
		d -= 0.5
	case d < -0.5:
		d += 0.5
	default:
		d = 0
	}
	r.Z = d / math.Sqrt(variance)
	r.P = NormalUpper(r.Z)
	return r
}
