package flags

import "unsafe"

// Detail is the full result of an evaluation. The zero Detail has no
// value, variant or reason.
type Detail[T any] struct {
	// Value is the variant's value, or the caller's default on error.
	Value T
	// Variant names the variant served; empty on error.
	Variant string
	// Reason says why this value was served.
	Reason Reason
	// ErrorCode is set when Reason is ERROR.
	ErrorCode ErrorCode
	// Err is ErrFlagNotFound or ErrTypeMismatch when ErrorCode is set.
	Err error
	// Metadata is the flag's metadata, shared between evaluations: do not
	// modify it. Nil for an unknown flag.
	Metadata map[string]any
}

// resolve finds and evaluates a flag; f is nil for an unknown flag.
func (s *Store) resolve(key string, ec *EvalContext, want Type) (f *cflag, vi int, code ErrorCode) {
	f = s.snap.Load().flags[key]
	if f == nil {
		s.unknown.Add(1)
		return nil, 0, CodeFlagNotFound
	}
	if f.typ != want && !(want == TypeFloat && f.typ == TypeInt) && want != anyType {
		f.usage.errors.Add(1)
		return f, 0, CodeTypeMismatch
	}
	vi, r := s.evalFlag(f, ec)
	return f, vi | int(r)<<reasonShift, CodeNone
}

// anyType asks resolve to accept every flag type (Object).
const anyType Type = 255

// reasonShift packs the reason next to the variant index in resolve's
// result, keeping the hot path's return in registers.
const reasonShift = 24

func detail[T any](f *cflag, packed int, code ErrorCode, def T, value func(*cvariant) T) Detail[T] {
	switch code {
	case CodeFlagNotFound:
		return Detail[T]{Value: def, Reason: ReasonError, ErrorCode: code, Err: ErrFlagNotFound}
	case CodeTypeMismatch:
		return Detail[T]{Value: def, Reason: ReasonError, ErrorCode: code, Err: ErrTypeMismatch, Metadata: f.meta}
	}
	v := &f.variants[packed&(1<<reasonShift-1)]
	return Detail[T]{Value: value(v), Variant: v.name, Reason: reasonNames[packed>>reasonShift], Metadata: f.meta}
}

// BoolDetail evaluates a bool flag for ec.
func (s *Store) BoolDetail(key string, ec EvalContext, def bool) Detail[bool] {
	f, p, code := s.resolve(key, &ec, TypeBool)
	return detail(f, p, code, def, func(v *cvariant) bool { return v.b })
}

// StringDetail evaluates a string flag for ec.
func (s *Store) StringDetail(key string, ec EvalContext, def string) Detail[string] {
	f, p, code := s.resolve(key, &ec, TypeString)
	return detail(f, p, code, def, func(v *cvariant) string { return v.s })
}

// IntDetail evaluates an int flag for ec.
func (s *Store) IntDetail(key string, ec EvalContext, def int64) Detail[int64] {
	f, p, code := s.resolve(key, &ec, TypeInt)
	return detail(f, p, code, def, func(v *cvariant) int64 { return v.i })
}

// FloatDetail evaluates a float flag (or an int flag, converted) for ec.
func (s *Store) FloatDetail(key string, ec EvalContext, def float64) Detail[float64] {
	f, p, code := s.resolve(key, &ec, TypeFloat)
	return detail(f, p, code, def, func(v *cvariant) float64 {
		if f.typ == TypeInt {
			return float64(v.i)
		}
		return v.f
	})
}

// ObjectDetail evaluates a flag of any type for ec and returns its value as
// defined (for an object flag, the decoded JSON). The value is shared
// between evaluations: do not modify it.
func (s *Store) ObjectDetail(key string, ec EvalContext, def any) Detail[any] {
	f, p, code := s.resolve(key, &ec, anyType)
	return detail(f, p, code, def, func(v *cvariant) any { return v.obj })
}

// Bool returns the value of a bool flag for ec, or def when the flag is
// unknown or not a bool.
func (s *Store) Bool(key string, ec EvalContext, def bool) bool {
	f, p, code := s.resolve(key, &ec, TypeBool)
	if code != CodeNone {
		return def
	}
	return f.variants[p&(1<<reasonShift-1)].b
}

// String returns the value of a string flag for ec, or def.
func (s *Store) String(key string, ec EvalContext, def string) string {
	f, p, code := s.resolve(key, &ec, TypeString)
	if code != CodeNone {
		return def
	}
	return f.variants[p&(1<<reasonShift-1)].s
}

// Int returns the value of an int flag for ec, or def.
func (s *Store) Int(key string, ec EvalContext, def int64) int64 {
	f, p, code := s.resolve(key, &ec, TypeInt)
	if code != CodeNone {
		return def
	}
	return f.variants[p&(1<<reasonShift-1)].i
}

// Float returns the value of a float (or int) flag for ec, or def.
func (s *Store) Float(key string, ec EvalContext, def float64) float64 {
	return s.FloatDetail(key, ec, def).Value
}

// Object returns the value of a flag of any type for ec, or def. The value
// is shared: do not modify it.
func (s *Store) Object(key string, ec EvalContext, def any) any {
	return s.ObjectDetail(key, ec, def).Value
}

// maxShards caps the counter lines per variant: 8 lines of 64 bytes.
const maxShards = 8

// shard picks a counter shard from the goroutine's stack address: two
// goroutines have different stacks, so cores evaluating the same flag
// mostly touch different cache lines. It costs no call and no allocation.
func shard() int {
	var x byte
	return int(uintptr(unsafe.Pointer(&x)) >> 13)
}

// count records an evaluation; it is the whole per-evaluation cost of usage
// tracking and metrics.
func (s *Store) count(f *cflag, vi int, r reason) {
	l := f.counters[vi].lines
	l[shard()&(len(l)-1)].n[r].Add(1)
	now := s.nowNano() / 1e9
	if f.usage.last.Load() != now {
		f.usage.last.Store(now)
	}
}

// evalFlag runs the flag's logic and counts the evaluation.
func (s *Store) evalFlag(f *cflag, ec *EvalContext) (int, reason) {
	vi, r := s.decide(f, ec)
	s.count(f, vi, r)
	return vi, r
}

func (s *Store) decide(f *cflag, ec *EvalContext) (int, reason) {
	if f.disabled {
		return f.off, rDisabled
	}
	for i := range f.prereqs {
		p := &f.prereqs[i]
		if vi, _ := s.evalFlag(p.flag, ec); !p.accept[vi] {
			return f.def, rDefault
		}
	}
	for i := range f.rules {
		r := &f.rules[i]
		if r.cond == nil || r.cond.match(s, ec) {
			if vi, ok := r.serve.pick(s, f, ec); ok {
				return vi, rTargeted
			}
			return f.def, rDefault
		}
	}
	if f.serve.kind == serveVariant {
		return f.serve.variant, f.fallReason
	}
	if vi, ok := f.serve.pick(s, f, ec); ok {
		return vi, rSplit
	}
	return f.def, rDefault
}
