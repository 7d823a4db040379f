package stats

import "math"

// The grid on which Sequential integrates the null density of Z: wide
// enough that the mass outside it is below 1e-15, fine enough that the
// trapezoid rule's relative error on the tail beyond a boundary stays
// below about 0.2%.
const (
	seqLo   = -8.0
	seqHi   = 9.0
	seqStep = 0.05
	seqN    = int((seqHi-seqLo)/seqStep) + 1
	seqCut  = 9.0 // kernel arguments beyond ±seqCut contribute nothing
)

// Sequential is the null distribution of a path of looks at one
// z-statistic computed on a growing sample: Z_k = S_k/√I_k where the score
// S has independent normal increments in the information I (a Brownian
// motion, as for a mean of independent observations; corr(Z_j, Z_k) =
// √(I_j/I_k)). Next gives the critical value at which look k rejects with
// probability alpha under the null, jointly with not having rejected at an
// earlier look of the path: the group-sequential boundary of Armitage,
// McPherson and Rowe's recursion, by numerical integration over the region
// not yet rejected. Spending alpha_k at look k this way, the probability
// that any look of the path rejects a true null is the sum of the alpha_k,
// as with the union bound, but each look's nominal level is higher, since
// the looks are correlated.
//
// The zero value is a path with no look yet. Not safe for concurrent use.
type Sequential struct {
	info float64
	c    float64 // boundary of the last look (+Inf: no rejection region)
	fc   float64 // density at c
	dens []float64
}

// Looks reports whether the path has had a look.
func (s *Sequential) Looks() bool { return s.info > 0 }

// Next returns the boundary z of a look at information info (1/variance
// of the estimate) spending alpha, and records the look. It returns false,
// recording nothing, when info is not above the previous look's: the
// sample did not grow, so the recursion does not apply (test that look by
// itself, at level alpha, with the union bound). alpha <= 0 gives +Inf.
func (s *Sequential) Next(info, alpha float64) (float64, bool) {
	if !(info > 0) || math.IsInf(info, 0) {
		return 0, false
	}
	if s.info > 0 && !(info > s.info*(1+1e-9)) {
		return 0, false
	}
	dens := make([]float64, seqN)
	var c float64
	if s.info == 0 {
		for i := range dens {
			dens[i] = phi(seqLo + float64(i)*seqStep)
		}
		c = math.Inf(1)
		if alpha > 0 {
			c = NormalUpperInv(min(alpha, 1-1e-12))
		}
	} else {
		for i := range dens {
			dens[i] = s.density(seqLo+float64(i)*seqStep, info)
		}
		c = boundary(dens, alpha)
	}
	fc := 0.0
	if !math.IsInf(c, 1) {
		if s.info == 0 {
			fc = phi(c)
		} else {
			fc = s.density(c, info)
		}
	}
	s.info, s.c, s.fc, s.dens = info, c, fc, dens
	return c, true
}

// density is the sub-density at z of the next look at information info,
// on the paths that did not reject at the looks so far: the integral over
// the continuation region of the last look's density times the normal
// transition of the score.
func (s *Sequential) density(z, info float64) float64 {
	a, b := math.Sqrt(info), math.Sqrt(s.info)
	sd := math.Sqrt(info - s.info)
	scale := a / sd
	// The transition's argument is (z·a - u·b)/sd, linear in u: only the
	// grid points within ±seqCut of the mean matter.
	slope := b / sd
	center := z * a / b // the u at which the argument is 0
	half := seqCut / slope
	last := seqN - 1 // last grid point strictly inside the region
	if !math.IsInf(s.c, 1) {
		last = min(int(math.Ceil((s.c-seqLo)/seqStep))-1, seqN-1)
	}
	lo := max(int(math.Floor((center-half-seqLo)/seqStep)), 0)
	hi := min(int(math.Ceil((center+half-seqLo)/seqStep)), last)
	sum := 0.0
	if lo <= hi {
		// exp(-x²/2) along x_j = x_lo - j·d by its ratio recurrence
		// (two products a point instead of an exponential): g_j+1 =
		// g_j·r_j, r_j+1 = r_j·exp(-d²).
		d := seqStep * slope
		x := (z*a - (seqLo+float64(lo)*seqStep)*b) / sd
		g := phi(x)
		r := math.Exp(x*d - d*d/2)
		q := math.Exp(-d * d)
		for j := lo; j <= hi; j++ {
			w := seqStep
			if j == 0 || j == last {
				w /= 2
			}
			sum += w * s.dens[j] * g
			g *= r
			r *= q
		}
	}
	if last >= 0 && !math.IsInf(s.c, 1) {
		// The sliver between the last grid point and the boundary, by
		// the trapezoid rule on its two ends.
		u := seqLo + float64(last)*seqStep
		if d := s.c - u; d > 0 {
			sum += d / 2 * (s.dens[last]*phi((z*a-u*b)/sd) + s.fc*phi((z*a-s.c*b)/sd))
		}
	}
	return sum * scale
}

// boundary finds c with the integral of dens above c equal to alpha,
// interpolating the density linearly within a grid cell.
func boundary(dens []float64, alpha float64) float64 {
	if alpha <= 0 {
		return math.Inf(1)
	}
	tail := 0.0
	for i := seqN - 2; i >= 0; i-- {
		cell := seqStep * (dens[i] + dens[i+1]) / 2
		if tail+cell < alpha {
			tail += cell
			continue
		}
		// The crossing is in [z_i, z_i+1]: bisect on the linear density.
		f0, f1 := dens[i], dens[i+1]
		above := func(x float64) float64 { // integral over [z_i + x, z_i+1]
			fx := f0 + (f1-f0)*x/seqStep
			return (seqStep - x) * (fx + f1) / 2
		}
		lo, hi := 0.0, seqStep
		for range 50 {
			mid := (lo + hi) / 2
			if tail+above(mid) >= alpha {
				lo = mid
			} else {
				hi = mid
			}
		}
		return seqLo + float64(i)*seqStep + lo
	}
	return seqLo // alpha above what is left: reject everything
}

func phi(z float64) float64 { return math.Exp(-z*z/2) / math.Sqrt(2*math.Pi) }
