package stats

import "math"

// BinomialGreater returns P(X >= x) for X binomial with n trials of
// probability p. It is the exact one-sided test of two event rates given
// their total: with x1 events in a group of size n1 and x2 in one of size
// n2, and rates in ratio r under the null, the first group's share of the
// x1+x2 events is binomial with p = r·n1/(r·n1+n2). It returns 1 for x <= 0
// and 0 for x > n, and panics on p outside [0, 1], which is a caller bug.
func BinomialGreater(x, n int64, p float64) float64 {
	if p < 0 || p > 1 || math.IsNaN(p) {
		panic("stats: probability outside [0, 1]")
	}
	switch {
	case x <= 0:
		return 1
	case x > n:
		return 0
	case p == 0:
		return 0
	case p == 1:
		return 1
	}
	lp, lq := math.Log(p), math.Log1p(-p)
	logPMF := func(k int64) float64 {
		return logChoose(n, k) + float64(k)*lp + float64(n-k)*lq
	}
	// As in hyperUpper: sum the side away from the mode, whose terms
	// shrink, and stop once they no longer change the sum.
	mode := int64(float64(n+1) * p)
	if x > mode {
		t := math.Exp(logPMF(x))
		sum := t
		for k := x; k < n; k++ {
			t *= float64(n-k) / float64(k+1) * p / (1 - p)
			sum += t
			if t < sum*1e-17 {
				break
			}
		}
		return min(sum, 1)
	}
	t := math.Exp(logPMF(x - 1))
	sum := t
	for k := x - 1; k > 0; k-- {
		t *= float64(k) / float64(n-k+1) * (1 - p) / p
		sum += t
		if t < sum*1e-17 {
			break
		}
	}
	return max(0, 1-sum)
}

// NormalLower returns P(Z < z) for a standard normal Z.
func NormalLower(z float64) float64 { return NormalUpper(-z) }
