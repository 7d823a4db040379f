package flags

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"strconv"
	"time"
)

// MaxRegexpProgram bounds the size of a matches operand: the number of
// instructions of its compiled program (about one per literal character,
// character class, repetition and alternative; the limit is the program
// Go's regexp runs, so x{50} counts 50 times). Go's regexp matches in
// time proportional to the input times the program, so with
// MaxAttributeLen this bounds one matches condition to a ceiling that
// BENCHMARKS.md measures. A larger expression is refused at load.
const MaxRegexpProgram = 100

// compileRegexp compiles an RE2 expression of at most MaxRegexpProgram
// instructions. It parses and compiles exactly as regexp.Compile does, so
// the size checked is the size that runs.
func compileRegexp(expr string) (*regexp.Regexp, error) {
	re, err := syntax.Parse(expr, syntax.Perl)
	if err != nil {
		return nil, err
	}
	prog, err := syntax.Compile(re.Simplify())
	if err != nil {
		return nil, err
	}
	if n := len(prog.Inst); n > MaxRegexpProgram {
		return nil, fmt.Errorf("regular expression compiles to %d instructions, more than MaxRegexpProgram (%d): "+
			"split it into several conditions (any, all), or use starts_with, ends_with, contains or in", n, MaxRegexpProgram)
	}
	return regexp.Compile(expr)
}

var opKinds = map[Op]opKind{
	OpEquals: opEquals, OpNotEquals: opNotEquals, OpIn: opIn, OpNotIn: opNotIn,
	OpContains: opContains, OpStartsWith: opStartsWith, OpEndsWith: opEndsWith, OpMatches: opMatches,
	OpLT: opLT, OpLTE: opLTE, OpGT: opGT, OpGTE: opGTE,
	OpSemverEq: opSemverEq, OpSemverLT: opSemverLT, OpSemverLTE: opSemverLTE, OpSemverGT: opSemverGT, OpSemverGTE: opSemverGTE,
	OpBefore: opBefore, OpAfter: opAfter, OpExists: opExists,
}

// cond compiles a condition; errors are LoadErrors with Field and Line set
// and the caller fills in flag or segment.
func (c *compiler) cond(d *Condition, field string, segmentsAllowed bool) (*cnode, error) {
	fail := func(sub, format string, args ...any) error {
		return &LoadError{Field: field + sub, Line: d.line, Err: fmt.Errorf(format, args...)}
	}
	kinds := 0
	if d.Op != "" || d.Attr != "" {
		kinds++
	}
	if d.All != nil {
		kinds++
	}
	if d.Any != nil {
		kinds++
	}
	if d.Not != nil {
		kinds++
	}
	if d.Segment != "" {
		kinds++
	}
	if kinds != 1 {
		return nil, fail("", "a condition needs exactly one of attr/op, all, any, not and segment")
	}
	children := func(list []Condition, name string, op opKind) (*cnode, error) {
		n := &cnode{op: op, kids: make([]cnode, len(list))}
		for i := range list {
			k, err := c.cond(&list[i], field+"."+name+"["+strconv.Itoa(i)+"]", segmentsAllowed)
			if err != nil {
				return nil, err
			}
			n.kids[i] = *k
		}
		return n, nil
	}
	switch {
	case d.All != nil:
		return children(d.All, "all", opAll)
	case d.Any != nil:
		return children(d.Any, "any", opAny)
	case d.Not != nil:
		k, err := c.cond(d.Not, field+".not", segmentsAllowed)
		if err != nil {
			return nil, err
		}
		return &cnode{op: opNot, kids: []cnode{*k}}, nil
	case d.Segment != "":
		if !segmentsAllowed {
			return nil, fail(".segment", "a segment's condition cannot refer to segments")
		}
		g := c.segments[d.Segment]
		if g == nil {
			return nil, fail(".segment", "unknown segment %q", d.Segment)
		}
		return &cnode{op: opSegment, x: &cnodeExt{seg: g}}, nil
	}
	op, ok := opKinds[d.Op]
	if !ok {
		return nil, fail(".op", "unknown operator %q", d.Op)
	}
	n := &cnode{op: op, attr: d.Attr}
	if d.Attr == "" && op != opBefore && op != opAfter {
		return nil, fail(".attr", "operator %s needs an attribute", d.Op)
	}
	if op == opIn || op == opNotIn {
		if d.Value != nil {
			return nil, fail(".value", "operator %s takes values, not value", d.Op)
		}
		if len(d.Values) == 0 {
			return nil, fail(".values", "operator %s needs a non-empty list", d.Op)
		}
		n.x = &cnodeExt{}
		for i, v := range d.Values {
			switch x := v.(type) {
			case string:
				if len(x) > MaxAttributeLen {
					return nil, fail(".values["+strconv.Itoa(i)+"]", "%d bytes, longer than any attribute evaluation reads (MaxAttributeLen, %d): it could never match", len(x), MaxAttributeLen)
				}
				n.x.strList = append(n.x.strList, x)
			default:
				f, ok := toNumStrict(v)
				if !ok {
					return nil, fail(".values["+strconv.Itoa(i)+"]", "%v (%T) is neither a string nor a number", v, v)
				}
				if n.x.nums == nil {
					n.x.nums = map[float64]struct{}{}
				}
				n.x.nums[f] = struct{}{}
			}
		}
		if len(n.x.strList) > smallSet {
			n.x.strSet = set(n.x.strList)
			n.x.strList = nil
		}
		return n, nil
	}
	if d.Values != nil {
		return nil, fail(".values", "operator %s takes value, not values", d.Op)
	}
	if op == opExists {
		return n, nil
	}
	if d.Value == nil {
		return nil, fail(".value", "operator %s needs a value", d.Op)
	}
	str, isStr := d.Value.(string)
	if isStr && len(str) > MaxAttributeLen && op != opMatches && op != opBefore && op != opAfter {
		return nil, fail(".value", "%d bytes, longer than any attribute evaluation reads (MaxAttributeLen, %d): it could never match", len(str), MaxAttributeLen)
	}
	switch op {
	case opEquals, opNotEquals:
		switch x := d.Value.(type) {
		case string:
			n.vkind, n.s = vString, x
		case bool:
			n.vkind, n.b = vBool, x
		default:
			f, ok := toNumStrict(x)
			if !ok {
				return nil, fail(".value", "%v (%T) is not a string, number or bool", x, x)
			}
			n.vkind, n.n = vNum, f
		}
	case opContains, opStartsWith, opEndsWith:
		if !isStr {
			return nil, fail(".value", "operator %s needs a string, not %T", d.Op, d.Value)
		}
		n.s = str
	case opMatches:
		if !isStr {
			return nil, fail(".value", "operator %s needs a string, not %T", d.Op, d.Value)
		}
		re, err := compileRegexp(str)
		if err != nil {
			return nil, fail(".value", "%w", err)
		}
		n.x = &cnodeExt{re: re}
	case opLT, opLTE, opGT, opGTE:
		f, ok := toNumStrict(d.Value)
		if !ok {
			return nil, fail(".value", "operator %s needs a number, not %v (%T)", d.Op, d.Value, d.Value)
		}
		n.n = f
	case opSemverEq, opSemverLT, opSemverLTE, opSemverGT, opSemverGTE:
		sv, ok := parseSemver(str)
		if !isStr || !ok {
			return nil, fail(".value", "%v is not a semantic version", d.Value)
		}
		n.x = &cnodeExt{sv: sv}
	case opBefore, opAfter:
		switch x := d.Value.(type) {
		case time.Time:
			n.x = &cnodeExt{t: x.UnixNano()}
		case string:
			t, err := time.Parse(time.RFC3339Nano, x)
			if err != nil {
				return nil, fail(".value", "%q is not an RFC 3339 time", x)
			}
			n.x = &cnodeExt{t: t.UnixNano()}
		default:
			return nil, fail(".value", "operator %s needs a time, not %T", d.Op, d.Value)
		}
	}
	return n, nil
}
