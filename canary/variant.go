package canary

import (
	"fmt"
	"time"
)

// Variant names the version that served a request. The zero value is Stable.
type Variant uint8

const (
	// Stable is the version in production: it serves every request that
	// is not sent to the canary.
	Stable Variant = iota
	// Canary is the new version under evaluation.
	Canary
	// Mirror marks the canary's handling of mirrored (shadow) copies of
	// stable requests: recorded apart so that dark-launch traffic never
	// mixes with the canary's real traffic in the analysis.
	Mirror

	numVariants = 3
)

// String returns "stable", "canary" or "mirror": the value of the variant
// attribute on exported metrics.
func (v Variant) String() string {
	switch v {
	case Stable:
		return "stable"
	case Canary:
		return "canary"
	case Mirror:
		return "mirror"
	}
	return fmt.Sprintf("Variant(%d)", uint8(v))
}

// MaxWeight is the canary weight that sends every request to the canary:
// weights are in basis points (0.01%) out of 10,000.
const MaxWeight = 10000

// Clock tells the time to the splitter, the metrics and the controller, so
// that simulations can run on a manual clock (see canarytest.Clock). The
// zero value, a nil Clock, in any Options means the system clock.
type Clock interface {
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func clockOr(c Clock) Clock {
	if c == nil {
		return systemClock{}
	}
	return c
}

// formatWeight renders basis points as a percentage: 500 -> "5%",
// 125 -> "1.25%".
func formatWeight(bp uint32) string {
	if bp%100 == 0 {
		return fmt.Sprintf("%d%%", bp/100)
	}
	return fmt.Sprintf("%.2f%%", float64(bp)/100)
}
