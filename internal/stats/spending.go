package stats

import (
	"fmt"
	"math"
)

// Shape is the form of an alpha-spending function: how much of the total
// alpha is spent by a given fraction of the planned looks. The zero value is
// Pocock.
type Shape int

const (
	// Pocock spends alpha almost evenly over the looks (Lan-DeMets form
	// alpha*ln(1+(e-1)t)), which detects a bad canary early: the right
	// default when failing fast matters more than power at the last look.
	Pocock Shape = iota
	// OBrienFleming spends almost nothing early (Lan-DeMets form
	// 2-2Φ(z_{α/2}/√t)) and keeps nearly all alpha for the last looks.
	OBrienFleming
)

// String returns the shape's name.
func (s Shape) String() string {
	switch s {
	case Pocock:
		return "pocock"
	case OBrienFleming:
		return "obrien-fleming"
	}
	return fmt.Sprintf("Shape(%d)", int(s))
}

// DefaultReserve is the share of alpha kept for looks beyond the planned
// number (a rollout that is paused or held back keeps being checked).
const DefaultReserve = 0.2

// Spending is an alpha-spending schedule for a sequence of looks at data.
// Look k (1-based) is tested at Level(k); by the union bound the chance that
// any look rejects a true null hypothesis is at most Alpha, whatever the
// dependence between looks.
//
// The zero value spends nothing (Alpha 0): every Level is 0.
type Spending struct {
	// Alpha is the total false-rejection probability over all looks.
	Alpha float64
	// Looks is the planned number of looks; (1-Reserve)*Alpha is spent
	// over them by Shape. Zero means 1.
	Looks int
	// Shape is the spending function over the planned looks.
	Shape Shape
	// Reserve is the share of Alpha spent after the planned looks, look
	// Looks+j getting Reserve*Alpha*6/(π²j²) so that the series sums to
	// the reserve. Zero means DefaultReserve; negative means none (looks
	// past the plan then get level 0).
	Reserve float64
}

// Level returns the significance level of look k (1-based); it returns 0
// for k < 1.
func (s Spending) Level(k int) float64 {
	if k < 1 || s.Alpha <= 0 {
		return 0
	}
	looks := max(s.Looks, 1)
	reserve := s.Reserve
	switch {
	case reserve == 0:
		reserve = DefaultReserve
	case reserve < 0:
		reserve = 0
	}
	if k > looks {
		j := float64(k - looks)
		return reserve * s.Alpha * 6 / (math.Pi * math.Pi * j * j)
	}
	main := (1 - reserve) * s.Alpha
	return s.spent(main, float64(k)/float64(looks)) - s.spent(main, float64(k-1)/float64(looks))
}

// spent returns the alpha spent by information fraction t out of a.
func (s Spending) spent(a, t float64) float64 {
	if t <= 0 {
		return 0
	}
	if t >= 1 {
		return a
	}
	switch s.Shape {
	case OBrienFleming:
		return 2 * NormalUpper(NormalUpperInv(a/2)/math.Sqrt(t))
	default:
		return a * math.Log(1+(math.E-1)*t)
	}
}
