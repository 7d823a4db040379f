package flags

import (
	"context"
	"fmt"
	"maps"
	"math"
	"slices"
)

// Run-time changes: the kill switch and percentages, applied on top of a
// flag's definition whichever source defines it. They come from two
// places: the Store's own (SetDisabled, SetPercent, the admin handler),
// kept apart from the sources so that they survive reloads, and a
// source's overrides section (a fleet's document), which lives and dies
// with that source's configuration.

// Override is a run-time change on top of a flag's definition: the kill
// switch, a percentage, or both. The zero Override changes nothing.
type Override struct {
	// Disabled, when set, turns the flag off (true: it serves its off
	// variant) or on (false) whatever its definition says. Nil leaves the
	// definition's.
	Disabled *bool
	// Percent, when set, makes the flag's fallthrough serve a variant to
	// a percentage of subjects and its Default to the rest, bucketed as
	// usual; rules still apply first. Nil leaves the definition's serve.
	Percent *Percent

	line int    // where the override starts in its file; 0 from code
	file string // the file that gave it; empty from code
}

// Percent is the share an Override serves: Variant to Percent (0 to 100)
// percent of subjects. The zero Percent names no variant and is invalid.
type Percent struct {
	Variant string
	Percent float64
}

// IsZero reports whether o changes nothing.
func (o Override) IsZero() bool { return o.Disabled == nil && o.Percent == nil }

// overrideEqual compares what two overrides change.
func overrideEqual(a, b Override) bool {
	if (a.Disabled == nil) != (b.Disabled == nil) || (a.Percent == nil) != (b.Percent == nil) {
		return false
	}
	return (a.Disabled == nil || *a.Disabled == *b.Disabled) && (a.Percent == nil || *a.Percent == *b.Percent)
}

// over returns o with the fields that top sets taken from top: the Store's
// own changes win over a source's, field by field.
func (o Override) over(top Override) Override {
	if top.Disabled != nil {
		o.Disabled = top.Disabled
	}
	if top.Percent != nil {
		o.Percent = top.Percent
	}
	return o
}

// SetDisabled turns a flag off (the kill switch) or back on at run time.
// The change survives reloads until ClearOverride.
func (s *Store) SetDisabled(key string, disabled bool) error {
	return s.setOverride(key, func(o *Override) error {
		o.Disabled = &disabled
		return nil
	})
}

// SetPercent makes the flag's fallthrough serve variant to percent (0 to
// 100) of subjects, bucketed as usual, and the flag's Default to the rest.
// Rules still apply first. The change survives reloads until ClearOverride.
func (s *Store) SetPercent(key, variant string, percent float64) error {
	return s.setOverride(key, func(o *Override) error {
		o.Percent = &Percent{Variant: variant, Percent: percent}
		return nil
	})
}

// ClearOverride removes the Store's run-time changes to the flag (a
// source's overrides stay).
func (s *Store) ClearOverride(key string) error {
	return s.setOverride(key, func(o *Override) error {
		*o = Override{}
		return nil
	})
}

// UpdateOverride changes the Store's run-time change of flag key: edit
// receives the current one (the zero Override if none) and modifies it;
// an error from edit, or a result that does not apply to the flag in
// force, changes nothing. It implements OverrideWriter, the admin
// handler's way of changing flags. ctx is only checked first: the Store
// never blocks.
func (s *Store) UpdateOverride(ctx context.Context, key string, edit func(*Override) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.setOverride(key, edit)
}

func (s *Store) setOverride(key string, edit func(*Override) error) error {
	if s.snap.Load().flags[key] == nil {
		return fmt.Errorf("%w: %q", ErrFlagNotFound, key)
	}
	return s.update("override:"+key, func(l []layer) []layer { return l }, func(m map[string]Override) error {
		o := m[key]
		if err := edit(&o); err != nil {
			return err
		}
		if o.IsZero() {
			delete(m, key)
			return nil
		}
		// Validate against the flag in force so that a bad variant is
		// refused rather than silently dropped.
		if err := s.CheckOverride(key, o); err != nil {
			return err
		}
		m[key] = o
		return nil
	})
}

// CheckOverride reports whether o applies to flag key as this Store
// serves it: the flag exists, the percentage is within 0 to 100 and names
// one of its variants other than its default. It changes nothing; an
// admin handler writing to a fleet (AdminOptions.Overrides) calls it
// before a change leaves the host.
func (s *Store) CheckOverride(key string, o Override) error {
	f := s.snap.Load().flags[key]
	if f == nil {
		return fmt.Errorf("%w: %q", ErrFlagNotFound, key)
	}
	probe := *f
	if err := probe.apply(o); err != nil {
		return fmt.Errorf("flags: flag %q: %w: %w", key, ErrInvalid, err)
	}
	return nil
}

// apply installs a run-time override on a freshly compiled flag; it
// changes nothing when it fails.
func (f *cflag) apply(o Override) error {
	var prog *cprog
	if p := o.Percent; p != nil {
		if !(p.Percent >= 0 && p.Percent <= 100) {
			return fmt.Errorf("percent %v is outside [0, 100]", p.Percent)
		}
		vi := f.variantIndex(p.Variant)
		if vi < 0 {
			return fmt.Errorf("unknown variant %q (have %s)", p.Variant, variantNames(f))
		}
		if vi == f.def {
			return fmt.Errorf("variant %q is the default; a percentage needs another variant", p.Variant)
		}
		prog = &cprog{
			variant: vi, otherwise: f.def,
			at:    []int64{math.MinInt64},
			share: []float64{p.Percent * percentTotal / 100},
		}
	}
	f.override = o
	if o.Disabled != nil {
		f.disabled = *o.Disabled
	}
	if prog != nil {
		f.serve = cserve{kind: serveProgressive, prog: prog}
	}
	return nil
}

// sourceOverride is an override given by a source, with where it came from.
type sourceOverride struct {
	o     Override
	layer string
	own   bool // the same source defines the flag
}

// overrides applies the sources' overrides and the Store's own (local) to
// the compiled flags. A source's override of a flag it defines itself
// must apply, like the rest of its definitions; one of another source's
// flag that does not apply (that source changed the flag) is skipped with
// a warning, and so is a local one, which the Store then drops: an
// override never blocks a reload. Overrides of flags that do not exist
// are left for the Store to drop (local) or ignored (a fleet's document
// may name a flag that only some hosts define).
func (c *compiler) overrides(layers []layer, local map[string]Override, sn *snapshot) error {
	given := map[string]sourceOverride{}
	for _, l := range layers {
		for key, o := range l.cfg.Overrides {
			src := sourceOf(l.name, o.file)
			if prev, dup := given[key]; dup {
				return &LoadError{File: src, Flag: key, Line: o.line, Field: "overrides",
					Err: fmt.Errorf("override also given by %s", sourceOf(prev.layer, prev.o.file))}
			}
			_, own := l.cfg.Flags[key]
			given[key] = sourceOverride{o: o, layer: l.name, own: own}
		}
	}
	for _, key := range slices.Sorted(maps.Keys(given)) {
		g := given[key]
		f := c.flags[key]
		if f == nil {
			continue
		}
		probe := *f
		if err := probe.apply(g.o); err != nil {
			if g.own {
				return &LoadError{File: sourceOf(g.layer, g.o.file), Flag: key, Line: g.o.line, Field: "overrides", Err: err}
			}
			sn.dropped = append(sn.dropped, droppedOverride{flag: key, source: g.layer, err: err})
			delete(given, key)
			continue
		}
		_ = f.apply(g.o)
	}
	for key, o := range local {
		f := c.flags[key]
		if f == nil {
			continue
		}
		if err := f.apply(given[key].o.over(o)); err != nil {
			sn.dropped = append(sn.dropped, droppedOverride{flag: key, err: err})
		}
	}
	return nil
}
