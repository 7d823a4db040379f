package stats

import "math"

// ProportionGreater returns the one-sided exact p-value for the hypothesis
// that the first proportion (x1 events out of n1 trials) is higher than the
// second (x2 out of n2): P(X >= x1) where X is hypergeometric, the number of
// the x1+x2 events that fall among the first n1 of the n1+n2 trials when both
// groups share one rate. It returns 1 when there is nothing to test (no
// trials or no events) and panics on counts that are negative or exceed
// their trials, which is a caller bug.
func ProportionGreater(x1, n1, x2, n2 int64) float64 {
	if x1 < 0 || x2 < 0 || x1 > n1 || x2 > n2 {
		panic("stats: event count outside [0, trials]")
	}
	return hyperUpper(n1+n2, x1+x2, n1, x1)
}

// ProportionZ returns the pooled two-proportion z statistic for p1 > p2; it
// is 0 when either group is empty or the pooled rate is 0 or 1. Use it to
// report an effect size; decide with ProportionGreater.
func ProportionZ(x1, n1, x2, n2 int64) float64 {
	if n1 == 0 || n2 == 0 {
		return 0
	}
	p := float64(x1+x2) / float64(n1+n2)
	se := math.Sqrt(p * (1 - p) * (1/float64(n1) + 1/float64(n2)))
	if se == 0 {
		return 0
	}
	return (float64(x1)/float64(n1) - float64(x2)/float64(n2)) / se
}

// hyperUpper returns P(X >= x) for X hypergeometric with population N,
// K successes in it and n draws.
func hyperUpper(N, K, n, x int64) float64 {
	lo := max(0, n-(N-K))
	hi := min(n, K)
	if x <= lo {
		return 1
	}
	if x > hi {
		return 0
	}
	// Summing away from the mode keeps every term smaller than the first,
	// so the loop stops as soon as the terms no longer change the sum.
	mode := (n + 1) * (K + 1) / (N + 2)
	if x > mode {
		t := math.Exp(logHyper(N, K, n, x))
		sum := t
		for k := x; k < hi; k++ {
			t *= float64(K-k) * float64(n-k) / (float64(k+1) * float64(N-K-n+k+1))
			sum += t
			if t < sum*1e-17 {
				break
			}
		}
		return min(sum, 1)
	}
	// The lower tail P(X <= x-1) is the short side here.
	t := math.Exp(logHyper(N, K, n, x-1))
	sum := t
	for k := x - 1; k > lo; k-- {
		t *= float64(k) * float64(N-K-n+k) / (float64(K-k+1) * float64(n-k+1))
		sum += t
		if t < sum*1e-17 {
			break
		}
	}
	return max(0, 1-sum)
}

func logHyper(N, K, n, k int64) float64 {
	return logChoose(K, k) + logChoose(N-K, n-k) - logChoose(N, n)
}

func logChoose(n, k int64) float64 {
	a, _ := math.Lgamma(float64(n + 1))
	b, _ := math.Lgamma(float64(k + 1))
	c, _ := math.Lgamma(float64(n - k + 1))
	return a - b - c
}

// ProportionGreaterBest is ProportionGreater together with the p-value of
// the most extreme split of the same x1+x2 events (as many as fit among the
// first n1 trials): the smallest p-value these totals could give. When even
// that cannot reach a level, no count of these totals can, and a sequential
// test need not spend a look on them.
func ProportionGreaterBest(x1, n1, x2, n2 int64) (p, best float64) {
	e := x1 + x2
	top := min(e, n1)
	return ProportionGreater(x1, n1, x2, n2), ProportionGreater(top, n1, e-top, n2)
}

// RateVariance is the variance of a rate estimated from x events of n
// trials, the rate shrunk towards 1/2 ((x+0.5)/(n+1)) so that a rate of 0
// does not claim certainty.
func RateVariance(x, n float64) float64 {
	p := (x + 0.5) / (n + 1)
	return p * (1 - p) / n
}
