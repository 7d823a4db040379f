package flags

import (
	"maps"
	"slices"
	"time"
)

// DefaultStaleAfter is how long a flag may go unevaluated before Stale
// reports it, when StaleOptions.After is zero.
const DefaultStaleAfter = 30 * 24 * time.Hour

// FlagStatus is a flag's state and usage, as listed by the admin handler.
// The zero FlagStatus describes no flag.
type FlagStatus struct {
	Key           string            `json:"key"`
	Type          string            `json:"type"`
	Source        string            `json:"source"`
	Disabled      bool              `json:"disabled"`
	Default       string            `json:"default"`
	Variants      []string          `json:"variants"`
	Rules         int               `json:"rules"`
	Serving       string            `json:"serving"`           // what the fallthrough serves, in words
	Percent       *float64          `json:"percent,omitempty"` // current share of a progressive or overridden rollout
	Overridden    bool              `json:"overridden"`        // a run-time change is in force
	Evaluations   uint64            `json:"evaluations"`
	Errors        uint64            `json:"errors"`
	ByVariant     map[string]uint64 `json:"byVariant"`
	LastEvaluated time.Time         `json:"lastEvaluated,omitzero"` // zero: never
	LoadedSince   time.Time         `json:"loadedSince"`
}

// Status returns the state and usage of one flag; the zero FlagStatus if
// it does not exist.
func (s *Store) Status(key string) FlagStatus {
	f := s.snap.Load().flags[key]
	if f == nil {
		return FlagStatus{}
	}
	return s.status(f)
}

// Flags returns the state and usage of every flag, sorted by key.
func (s *Store) Flags() []FlagStatus {
	sn := s.snap.Load()
	out := make([]FlagStatus, 0, len(sn.flags))
	for _, k := range slices.Sorted(maps.Keys(sn.flags)) {
		out = append(out, s.status(sn.flags[k]))
	}
	return out
}

func (s *Store) status(f *cflag) FlagStatus {
	st := FlagStatus{
		Key: f.key, Type: f.typ.String(), Source: f.source, Disabled: f.disabled,
		Default: f.variants[f.def].name, Rules: len(f.rules),
		Overridden: !f.override.IsZero(),
		Errors:     f.usage.errors.Load(), ByVariant: map[string]uint64{},
		LoadedSince: f.usage.since,
	}
	for i := range f.variants {
		st.Variants = append(st.Variants, f.variants[i].name)
		var n uint64
		for r := reason(0); r < numCounted; r++ {
			n += f.counters[i].total(r)
		}
		st.ByVariant[f.variants[i].name] = n
		st.Evaluations += n
	}
	if sec := f.usage.last.Load(); sec != 0 {
		st.LastEvaluated = time.Unix(sec, 0).UTC()
	}
	switch f.serve.kind {
	case serveVariant:
		st.Serving = "variant " + f.variants[f.serve.variant].name
	case serveRollout:
		st.Serving = "rollout"
		for i, w := range f.serve.weights {
			st.Serving += " " + f.variants[f.serve.widx[i]].name + ":" + itoa(uint64(w))
		}
	case serveProgressive:
		p := f.serve.prog
		pct := float64(p.shareAt(s.nowNano())) * 100 / percentTotal
		st.Percent = &pct
		st.Serving = "progressive " + f.variants[p.variant].name + " else " + f.variants[p.otherwise].name
	}
	return st
}

func itoa(n uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

// StaleOptions selects what Stale reports. The zero StaleOptions uses
// DefaultStaleAfter.
type StaleOptions struct {
	// After is how long without an evaluation makes a flag stale. Zero
	// means DefaultStaleAfter.
	After time.Duration
}

// StaleFlag is a flag that is probably debt: unused, or serving one
// variant to everyone so that the code path it guards can be made
// permanent. The zero StaleFlag names no flag.
type StaleFlag struct {
	Key    string `json:"key"`
	Source string `json:"source"`
	// Why is "unused" (not evaluated within After, or never since loaded
	// at least After ago) or "settled" (serves one variant to everyone).
	Why string `json:"why"`
	// Variant is the variant everyone gets, for "settled".
	Variant       string    `json:"variant,omitempty"`
	LastEvaluated time.Time `json:"lastEvaluated,omitzero"`
}

// Stale lists flags not evaluated for opts.After, and flags whose
// configuration serves the same variant to every subject (disabled, no
// rules or prerequisites and a single-variant fallthrough, a rollout with a
// single non-zero weight, or a progressive rollout past its last step at 0
// or 100%). Usage is counted since the Store started: a restart resets it,
// and a flag counts as unused only once it has been loaded for After.
func (s *Store) Stale(opts StaleOptions) []StaleFlag {
	after := opts.After
	if after <= 0 {
		after = DefaultStaleAfter
	}
	now := time.Unix(0, s.nowNano())
	sn := s.snap.Load()
	var out []StaleFlag
	for _, k := range slices.Sorted(maps.Keys(sn.flags)) {
		f := sn.flags[k]
		sf := StaleFlag{Key: k, Source: f.source}
		if sec := f.usage.last.Load(); sec != 0 {
			sf.LastEvaluated = time.Unix(sec, 0).UTC()
		}
		if v, ok := s.settled(f, now.UnixNano()); ok {
			sf.Why, sf.Variant = "settled", f.variants[v].name
			out = append(out, sf)
			continue
		}
		last := sf.LastEvaluated
		if last.IsZero() {
			last = f.usage.since
		}
		if now.Sub(last) >= after {
			sf.Why = "unused"
			out = append(out, sf)
		}
	}
	return out
}

// settled reports the single variant a flag serves to everyone, if any.
func (s *Store) settled(f *cflag, now int64) (int, bool) {
	if f.disabled {
		return f.off, true
	}
	if len(f.rules) > 0 || len(f.prereqs) > 0 {
		return 0, false
	}
	switch f.serve.kind {
	case serveVariant:
		return f.serve.variant, true
	case serveRollout:
		only := -1
		for i, w := range f.serve.weights {
			if w == 0 {
				continue
			}
			if only >= 0 && f.serve.widx[i] != only {
				return 0, false
			}
			only = f.serve.widx[i]
		}
		return only, only >= 0
	default:
		p := f.serve.prog
		if now < p.at[len(p.at)-1] {
			return 0, false
		}
		switch p.shareAt(now) {
		case 0:
			return p.otherwise, true
		case percentTotal:
			return p.variant, true
		}
	}
	return 0, false
}
