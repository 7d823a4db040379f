package flags

import (
	"math"
	"strconv"
	"strings"
	"unsafe"

	"github.com/batonhq/baton/internal/bucket"
)

// Matching and serving: the evaluation hot path over compiled conditions.

func (g *csegment) match(s *Store, ec *EvalContext) bool {
	if tk := ec.targetingKey(); tk != "" {
		if _, ok := g.keys[tk]; ok {
			return true
		}
		if _, ok := g.excluded[tk]; ok {
			return false
		}
	}
	return g.cond != nil && g.cond.match(s, ec)
}

func (c *cnode) match(s *Store, ec *EvalContext) bool {
	switch c.op {
	case opAll:
		for i := range c.kids {
			if !c.kids[i].match(s, ec) {
				return false
			}
		}
		return true
	case opAny:
		for i := range c.kids {
			if c.kids[i].match(s, ec) {
				return true
			}
		}
		return false
	case opNot:
		return !c.kids[0].match(s, ec)
	case opSegment:
		return c.x.seg.match(s, ec)
	case opEquals:
		return c.equals(ec)
	case opNotEquals:
		return c.present(ec) && !c.equals(ec)
	case opIn:
		return c.in(ec)
	case opNotIn:
		return c.present(ec) && !c.in(ec)
	case opContains:
		return c.contains(ec)
	case opStartsWith:
		v, ok := ec.str(c.attr)
		return ok && strings.HasPrefix(v, c.s)
	case opEndsWith:
		v, ok := ec.str(c.attr)
		return ok && strings.HasSuffix(v, c.s)
	case opMatches:
		v, ok := ec.str(c.attr)
		return ok && c.x.re.MatchString(v)
	case opLT, opLTE, opGT, opGTE:
		v, ok := ec.num(c.attr)
		if !ok || math.IsNaN(v) {
			return false
		}
		switch c.op {
		case opLT:
			return v < c.n
		case opLTE:
			return v <= c.n
		case opGT:
			return v > c.n
		default:
			return v >= c.n
		}
	case opSemverEq, opSemverLT, opSemverLTE, opSemverGT, opSemverGTE:
		v, ok := ec.str(c.attr)
		if !ok {
			return false
		}
		sv, ok := parseSemver(v)
		if !ok {
			return false
		}
		cmp := compareSemver(sv, c.x.sv)
		switch c.op {
		case opSemverEq:
			return cmp == 0
		case opSemverLT:
			return cmp < 0
		case opSemverLTE:
			return cmp <= 0
		case opSemverGT:
			return cmp > 0
		default:
			return cmp >= 0
		}
	case opBefore, opAfter:
		var t int64
		if c.attr == "" {
			t = s.nowNano()
		} else {
			var ok bool
			if t, ok = ec.unixNano(c.attr); !ok {
				return false
			}
		}
		if c.op == opBefore {
			return t < c.x.t
		}
		return t >= c.x.t
	case opExists:
		return c.present(ec)
	}
	return false
}

func (c *cnode) present(ec *EvalContext) bool {
	_, _, _, ok := ec.lookup(c.attr)
	return ok
}

func (c *cnode) equals(ec *EvalContext) bool {
	switch c.vkind {
	case vString:
		v, ok := ec.str(c.attr)
		return ok && v == c.s
	case vNum:
		v, ok := ec.num(c.attr)
		return ok && v == c.n
	default:
		v, _, _, ok := ec.lookup(c.attr)
		b, isBool := v.(bool)
		return ok && isBool && b == c.b
	}
}

func (c *cnode) in(ec *EvalContext) bool {
	if v, ok := ec.str(c.attr); ok {
		if c.x.strSet != nil {
			_, in := c.x.strSet[v]
			return in
		}
		for _, e := range c.x.strList {
			if e == v {
				return true
			}
		}
		if len(c.x.nums) == 0 {
			return false
		}
		// A numeric string matches a number in the list, as equals does.
		if n, ok := parseNum(v); ok {
			_, in := c.x.nums[n]
			return in
		}
		return false
	}
	if len(c.x.nums) == 0 {
		return false
	}
	if v, ok := ec.num(c.attr); ok {
		_, in := c.x.nums[v]
		return in
	}
	return false
}

func (c *cnode) contains(ec *EvalContext) bool {
	v, tk, isKey, ok := ec.lookup(c.attr)
	if isKey {
		return strings.Contains(tk, c.s)
	}
	if !ok {
		return false
	}
	switch x := v.(type) {
	case string:
		return strings.Contains(x, c.s)
	case []string:
		for _, e := range x {
			if e == c.s {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if s, ok := e.(string); ok && s == c.s {
				return true
			}
		}
	}
	return false
}

// pick resolves a serve to a variant index; ok is false when a split has
// no bucketing value or no weight.
func (sv *cserve) pick(s *Store, f *cflag, ec *EvalContext) (int, bool) {
	switch sv.kind {
	case serveVariant:
		return sv.variant, true
	case serveRollout:
		var buf [20]byte
		key, ok := f.bucketKey(ec, buf[:0])
		if !ok {
			return 0, false
		}
		i := bucket.Pick(bucket.Hash(f.salt, key), sv.weights)
		if i < 0 {
			return 0, false
		}
		return sv.widx[i], true
	default:
		p := sv.prog
		var buf [20]byte
		key, ok := f.bucketKey(ec, buf[:0])
		if !ok {
			return 0, false
		}
		share := p.shareAt(s.nowNano())
		if bucket.In(bucket.Hash(f.salt, key), share, percentTotal) {
			return p.variant, true
		}
		return p.otherwise, true
	}
}

// bucketKey returns the value a split hashes: the targeting key, or the
// BucketBy attribute, a string or an integer (formatted in decimal into
// buf, which the caller keeps on its stack, so that user IDs stored as
// numbers bucket like their decimal strings without allocating).
func (f *cflag) bucketKey(ec *EvalContext, buf []byte) (string, bool) {
	if f.bucketBy == "" {
		k := ec.targetingKey()
		return k, k != ""
	}
	v, tk, isKey, ok := ec.lookup(f.bucketBy)
	if isKey {
		return tk, true
	}
	if !ok {
		return "", false
	}
	switch x := v.(type) {
	case string:
		return x, x != ""
	case int:
		buf = strconv.AppendInt(buf, int64(x), 10)
	case int64:
		buf = strconv.AppendInt(buf, x, 10)
	case int32:
		buf = strconv.AppendInt(buf, int64(x), 10)
	case uint64:
		buf = strconv.AppendUint(buf, x, 10)
	case uint32:
		buf = strconv.AppendUint(buf, uint64(x), 10)
	case uint:
		buf = strconv.AppendUint(buf, uint64(x), 10)
	case float64:
		if x != math.Trunc(x) || math.Abs(x) >= 1<<63 {
			return "", false
		}
		buf = strconv.AppendInt(buf, int64(x), 10)
	default:
		return "", false
	}
	return unsafe.String(unsafe.SliceData(buf), len(buf)), true
}
