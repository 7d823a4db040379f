package flags

// Result is the outcome of Evaluate in compact form (three words), for
// adapters such as the OpenFeature provider that build their own result
// type: copying a full Detail and then converting it costs more than the
// evaluation. The zero Result is a FLAG_NOT_FOUND error.
type Result struct {
	f      *cflag
	packed int // variant index | reason << reasonShift
	code   ErrorCode
}

// Evaluate evaluates flag key for ec, expecting type t (TypeFloat also
// accepts int flags). ec is only read during the call.
func (s *Store) Evaluate(key string, ec *EvalContext, t Type) Result {
	f, p, code := s.resolve(key, ec, t)
	if f == nil {
		code = CodeFlagNotFound
	}
	return Result{f: f, packed: p, code: code}
}

// EvaluateAny is Evaluate accepting a flag of any type (for Object).
func (s *Store) EvaluateAny(key string, ec *EvalContext) Result {
	return s.Evaluate(key, ec, anyType)
}

func (r Result) ok() bool { return r.f != nil && r.code == CodeNone }

func (r Result) variant() *cvariant { return &r.f.variants[r.packed&(1<<reasonShift-1)] }

// Variant names the variant served; empty on error.
func (r Result) Variant() string {
	if !r.ok() {
		return ""
	}
	return r.variant().name
}

// Reason says why the value was served.
func (r Result) Reason() Reason {
	if !r.ok() {
		return ReasonError
	}
	return reasonNames[r.packed>>reasonShift]
}

// ErrorCode is CodeNone on success.
func (r Result) ErrorCode() ErrorCode {
	if r.f == nil {
		return CodeFlagNotFound
	}
	return r.code
}

// Metadata is the flag's metadata (shared: do not modify); nil for an
// unknown flag.
func (r Result) Metadata() map[string]any {
	if r.f == nil {
		return nil
	}
	return r.f.meta
}

// Bool returns the bool value, or def on error.
func (r Result) Bool(def bool) bool {
	if !r.ok() {
		return def
	}
	return r.variant().b
}

// String returns the string value, or def on error.
func (r Result) String(def string) string {
	if !r.ok() {
		return def
	}
	return r.variant().s
}

// Int returns the int value, or def on error.
func (r Result) Int(def int64) int64 {
	if !r.ok() {
		return def
	}
	return r.variant().i
}

// Float returns the float value (an int flag's value converted), or def.
func (r Result) Float(def float64) float64 {
	if !r.ok() {
		return def
	}
	if r.f.typ == TypeInt {
		return float64(r.variant().i)
	}
	return r.variant().f
}

// Object returns the value as defined (shared: do not modify), or def.
func (r Result) Object(def any) any {
	if !r.ok() {
		return def
	}
	return r.variant().obj
}
