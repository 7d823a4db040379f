package stats

import "math"

// NormalUpper returns P(Z > z) for a standard normal Z, accurate in the far
// tail (it uses erfc rather than 1-Φ).
func NormalUpper(z float64) float64 {
	return 0.5 * math.Erfc(z/math.Sqrt2)
}

// NormalUpperInv returns z such that P(Z > z) = p, for p in (0, 1).
func NormalUpperInv(p float64) float64 {
	return math.Sqrt2 * math.Erfcinv(2*p)
}
