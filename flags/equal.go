package flags

import (
	"reflect"
	"slices"
)

// The functions below decide which flags an update changed. They compare
// definitions field by field: reflect.DeepEqual on whole Flags cost as much
// as compiling them. Positions (line, file) are compared too, so a flag
// that only moved in its file is reported as changed.

func flagEqual(a, b *Flag) bool {
	if a.Type != b.Type || a.Default != b.Default || a.Disabled != b.Disabled || a.OffVariant != b.OffVariant ||
		a.Salt != b.Salt || a.BucketBy != b.BucketBy || a.line != b.line || a.file != b.file ||
		!anyMapEqual(a.Variants, b.Variants) || !anyMapEqual(a.Metadata, b.Metadata) || !serveEqual(&a.Serve, &b.Serve) ||
		len(a.Prerequisites) != len(b.Prerequisites) || len(a.Rules) != len(b.Rules) {
		return false
	}
	for i := range a.Prerequisites {
		p, q := &a.Prerequisites[i], &b.Prerequisites[i]
		if p.Flag != q.Flag || p.line != q.line || !slices.Equal(p.Variants, q.Variants) {
			return false
		}
	}
	for i := range a.Rules {
		r, q := &a.Rules[i], &b.Rules[i]
		if r.Name != q.Name || r.line != q.line || !condPtrEqual(r.If, q.If) || !serveEqual(&r.Serve, &q.Serve) {
			return false
		}
	}
	return true
}

func serveEqual(a, b *Serve) bool {
	if a.Variant != b.Variant || !slices.Equal(a.Rollout, b.Rollout) || (a.Rollout == nil) != (b.Rollout == nil) {
		return false
	}
	p, q := a.Progressive, b.Progressive
	if p == nil || q == nil {
		return p == q
	}
	return p.Variant == q.Variant && p.Otherwise == q.Otherwise && stepPtrEqual(p.From, q.From) &&
		stepPtrEqual(p.To, q.To) && slices.EqualFunc(p.Steps, q.Steps, stepEqual)
}

func stepEqual(a, b Step) bool { return a.Percent == b.Percent && a.At.Equal(b.At) }

func stepPtrEqual(a, b *Step) bool {
	if a == nil || b == nil {
		return a == b
	}
	return stepEqual(*a, *b)
}

func condPtrEqual(a, b *Condition) bool {
	if a == nil || b == nil {
		return a == b
	}
	return condEqual(a, b)
}

func condEqual(a, b *Condition) bool {
	if a.Attr != b.Attr || a.Op != b.Op || a.Segment != b.Segment || a.line != b.line ||
		!valueEqual(a.Value, b.Value) || len(a.Values) != len(b.Values) ||
		len(a.All) != len(b.All) || len(a.Any) != len(b.Any) || (a.All == nil) != (b.All == nil) ||
		(a.Any == nil) != (b.Any == nil) || !condPtrEqual(a.Not, b.Not) {
		return false
	}
	for i := range a.Values {
		if !valueEqual(a.Values[i], b.Values[i]) {
			return false
		}
	}
	for i := range a.All {
		if !condEqual(&a.All[i], &b.All[i]) {
			return false
		}
	}
	for i := range a.Any {
		if !condEqual(&a.Any[i], &b.Any[i]) {
			return false
		}
	}
	return true
}

func anyMapEqual(a, b map[string]any) bool {
	if len(a) != len(b) || (a == nil) != (b == nil) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !valueEqual(v, w) {
			return false
		}
	}
	return true
}

// valueEqual compares scalars directly and falls back to DeepEqual for
// objects and lists.
func valueEqual(a, b any) bool {
	switch x := a.(type) {
	case nil:
		return b == nil
	case string:
		y, ok := b.(string)
		return ok && x == y
	case bool:
		y, ok := b.(bool)
		return ok && x == y
	case int:
		y, ok := b.(int)
		return ok && x == y
	case int64:
		y, ok := b.(int64)
		return ok && x == y
	case float64:
		y, ok := b.(float64)
		return ok && x == y
	}
	return reflect.DeepEqual(a, b)
}
