package flags

import (
	"fmt"
	"math"
)

// Run-time changes: the kill switch and percentages set through the Store
// (or the admin handler), kept apart from the sources so that they survive
// reloads.

// override is a run-time change made through the Store (admin): it
// survives reloads until cleared.
type override struct {
	disabled *bool
	percent  *pctOverride
}

type pctOverride struct {
	variant string
	percent float64
}

// SetDisabled turns a flag off (the kill switch) or back on at run time.
// The change survives reloads until ClearOverride.
func (s *Store) SetDisabled(key string, disabled bool) error {
	return s.setOverride(key, func(o *override) error {
		o.disabled = &disabled
		return nil
	})
}

// SetPercent makes the flag's fallthrough serve variant to percent (0 to
// 100) of subjects, bucketed as usual, and the flag's Default to the rest.
// Rules still apply first. The change survives reloads until ClearOverride.
func (s *Store) SetPercent(key, variant string, percent float64) error {
	if !(percent >= 0 && percent <= 100) {
		return fmt.Errorf("flags: percent %v is outside [0, 100]: %w", percent, ErrInvalid)
	}
	return s.setOverride(key, func(o *override) error {
		o.percent = &pctOverride{variant: variant, percent: percent}
		return nil
	})
}

// ClearOverride removes run-time changes to the flag.
func (s *Store) ClearOverride(key string) error {
	return s.setOverride(key, func(o *override) error {
		*o = override{}
		return nil
	})
}

func (s *Store) setOverride(key string, edit func(*override) error) error {
	if s.snap.Load().flags[key] == nil {
		return fmt.Errorf("%w: %q", ErrFlagNotFound, key)
	}
	var applyErr error
	err := s.update("override:"+key, func(l []layer) []layer { return l }, func(m map[string]override) error {
		o := m[key]
		if err := edit(&o); err != nil {
			return err
		}
		if o.disabled == nil && o.percent == nil {
			delete(m, key)
			return nil
		}
		m[key] = o
		// Validate against the flag in force so that a bad variant is
		// refused rather than silently dropped.
		if f := s.snap.Load().flags[key]; f != nil {
			probe := *f
			applyErr = probe.apply(o)
		} else {
			applyErr = fmt.Errorf("%w: %q", ErrFlagNotFound, key)
		}
		if applyErr != nil {
			return fmt.Errorf("flags: flag %q: %w: %w", key, ErrInvalid, applyErr)
		}
		return nil
	})
	return err
}

// apply installs a run-time override on a freshly compiled flag; it
// changes nothing when it fails.
func (f *cflag) apply(o override) error {
	var prog *cprog
	if p := o.percent; p != nil {
		vi := f.variantIndex(p.variant)
		if vi < 0 {
			return fmt.Errorf("unknown variant %q", p.variant)
		}
		if vi == f.def {
			return fmt.Errorf("variant %q is the default; a percentage needs another variant", p.variant)
		}
		prog = &cprog{
			variant: vi, otherwise: f.def,
			at:    []int64{math.MinInt64},
			share: []float64{p.percent * percentTotal / 100},
		}
	}
	f.override = o
	if o.disabled != nil {
		f.disabled = *o.disabled
	}
	if prog != nil {
		f.serve = cserve{kind: serveProgressive, prog: prog}
	}
	return nil
}
