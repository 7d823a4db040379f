package flags

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"time"
)

// layer is one source's contribution, remembered so that a reload of one
// source recompiles it together with the others.
type layer struct {
	name string
	cfg  Config
}

type compiler struct {
	flags    map[string]*cflag
	segments map[string]*csegment
	defs     map[string]Flag
	segDefs  map[string]Segment
	sources  map[string]string // flag or segment key -> source
	segSrc   map[string]string
}

func (c *compiler) errf(flag, field string, line int, format string, args ...any) *LoadError {
	return &LoadError{File: c.sources[flag], Flag: flag, Line: line, Field: field, Err: fmt.Errorf(format, args...)}
}

// compile turns the layers into a snapshot. It does not touch the Store's
// usage; attach does that under the Store's lock.
func compile(layers []layer, overrides map[string]Override) (*snapshot, error) {
	c := &compiler{
		flags:    map[string]*cflag{},
		segments: map[string]*csegment{},
		defs:     map[string]Flag{},
		segDefs:  map[string]Segment{},
		sources:  map[string]string{},
		segSrc:   map[string]string{},
	}
	for _, l := range layers {
		for _, name := range slices.Sorted(maps.Keys(l.cfg.Segments)) {
			sg := l.cfg.Segments[name]
			src := sourceOf(l.name, sg.file)
			if prev, dup := c.segSrc[name]; dup {
				return nil, &LoadError{File: src, Segment: name, Line: sg.line, Err: fmt.Errorf("segment also defined in %s", prev)}
			}
			c.segSrc[name] = src
			c.segDefs[name] = sg
		}
		for _, key := range slices.Sorted(maps.Keys(l.cfg.Flags)) {
			f := l.cfg.Flags[key]
			src := sourceOf(l.name, f.file)
			if prev, dup := c.sources[key]; dup {
				return nil, &LoadError{File: src, Flag: key, Line: f.line, Err: fmt.Errorf("flag also defined in %s", prev)}
			}
			c.sources[key] = src
			c.defs[key] = f
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.segDefs)) {
		if err := c.segment(name, c.segDefs[name]); err != nil {
			return nil, err
		}
	}
	keys := slices.Sorted(maps.Keys(c.defs))
	for _, key := range keys {
		f, err := c.flag(key, c.defs[key])
		if err != nil {
			return nil, err
		}
		c.flags[key] = f
	}
	for _, key := range keys {
		if err := c.link(key); err != nil {
			return nil, err
		}
	}
	if err := c.cycles(keys); err != nil {
		return nil, err
	}
	sn := &snapshot{flags: c.flags, segments: c.segments}
	if err := c.overrides(layers, overrides, sn); err != nil {
		return nil, err
	}
	return sn, nil
}

func sourceOf(layerName, file string) string {
	if file != "" {
		return file
	}
	return layerName
}

func (c *compiler) segment(name string, sg Segment) error {
	for _, list := range [...]struct {
		field string
		keys  []string
	}{{"keys", sg.Keys}, {"excluded", sg.Excluded}} {
		for i, k := range list.keys {
			if len(k) > MaxAttributeLen {
				return &LoadError{File: c.segSrc[name], Segment: name, Line: sg.line, Field: index(list.field, i),
					Err: fmt.Errorf("%d bytes, longer than any targeting key evaluation reads (MaxAttributeLen, %d): it could never match", len(k), MaxAttributeLen)}
			}
		}
	}
	g := &csegment{name: name, keys: set(sg.Keys), excluded: set(sg.Excluded)}
	if sg.If != nil {
		n, err := c.cond(sg.If, "if", false)
		if err != nil {
			var le *LoadError
			if errors.As(err, &le) {
				le.File, le.Segment, le.Flag = c.segSrc[name], name, ""
				if le.Line == 0 {
					le.Line = sg.line
				}
			}
			return err
		}
		g.cond = n
	}
	c.segments[name] = g
	return nil
}

func set(keys []string) map[string]struct{} {
	if len(keys) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		m[k] = struct{}{}
	}
	return m
}

func (c *compiler) flag(key string, d Flag) (*cflag, error) {
	if key == "" {
		return nil, c.errf(key, "", d.line, "empty flag key")
	}
	if d.Type > TypeObject {
		return nil, c.errf(key, "type", d.line, "unknown type %d", d.Type)
	}
	f := &cflag{
		key: key, typ: d.Type, disabled: d.Disabled, salt: d.Salt, bucketBy: d.BucketBy,
		meta: d.Metadata, source: c.sources[key],
	}
	if f.salt == "" {
		f.salt = key
	}
	if len(d.Variants) == 0 {
		return nil, c.errf(key, "variants", d.line, "at least one variant is required")
	}
	for _, name := range slices.Sorted(maps.Keys(d.Variants)) {
		v, err := variantValue(d.Type, d.Variants[name])
		if err != nil {
			return nil, c.errf(key, "variants."+name, d.line, "%w", err)
		}
		v.name = name
		f.variants = append(f.variants, v)
	}
	var err error
	if f.def, err = c.variantRef(f, d.Default, "default", d.line); err != nil {
		return nil, err
	}
	f.off = f.def
	if d.OffVariant != "" {
		if f.off, err = c.variantRef(f, d.OffVariant, "offVariant", d.line); err != nil {
			return nil, err
		}
	}
	for i, r := range d.Rules {
		field := "rules[" + strconv.Itoa(i) + "]"
		line := r.line
		if line == 0 {
			line = d.line
		}
		cr := crule{name: r.Name}
		if r.If != nil {
			n, err := c.cond(r.If, field+".if", true)
			if err != nil {
				var le *LoadError
				if errors.As(err, &le) {
					le.Flag, le.File = key, c.sources[key]
					if le.Line == 0 {
						le.Line = line
					}
				}
				return nil, err
			}
			cr.cond = n
		}
		if r.Serve.Variant == "" && r.Serve.Rollout == nil && r.Serve.Progressive == nil {
			return nil, c.errf(key, field+".serve", line, "a rule must serve a variant, a rollout or a progressive rollout")
		}
		if cr.serve, err = c.serve(f, r.Serve, field+".serve", line); err != nil {
			return nil, err
		}
		f.rules = append(f.rules, cr)
	}
	if f.serve, err = c.serve(f, d.Serve, "serve", d.line); err != nil {
		return nil, err
	}
	f.fallReason = rStatic
	if len(d.Rules) > 0 || len(d.Prerequisites) > 0 {
		f.fallReason = rDefault
	}
	return f, nil
}

func (c *compiler) variantRef(f *cflag, name, field string, line int) (int, error) {
	if name == "" {
		return 0, c.errf(f.key, field, line, "a variant name is required")
	}
	if i := f.variantIndex(name); i >= 0 {
		return i, nil
	}
	return 0, c.errf(f.key, field, line, "unknown variant %q (have %s)", name, variantNames(f))
}

func variantNames(f *cflag) string {
	names := make([]string, len(f.variants))
	for i := range f.variants {
		names[i] = strconv.Quote(f.variants[i].name)
	}
	return fmt.Sprint(names)
}

func variantValue(t Type, v any) (cvariant, error) {
	cv := cvariant{obj: v}
	switch t {
	case TypeBool:
		b, ok := v.(bool)
		if !ok {
			return cv, fmt.Errorf("value %v (%T) is not a bool", v, v)
		}
		cv.b = b
	case TypeString:
		s, ok := v.(string)
		if !ok {
			return cv, fmt.Errorf("value %v (%T) is not a string", v, v)
		}
		cv.s = s
	case TypeInt:
		i, ok := toInt64(v)
		if !ok {
			return cv, fmt.Errorf("value %v (%T) is not an integer from -2^63 to 2^63-1", v, v)
		}
		cv.i = i
	case TypeFloat:
		f, ok := toNumStrict(v)
		if !ok {
			return cv, fmt.Errorf("value %v (%T) is not a number", v, v)
		}
		cv.f = f
	case TypeObject:
		if v == nil {
			return cv, fmt.Errorf("value is null")
		}
	}
	return cv, nil
}

// toInt64 converts an int variant's value exactly: integers of any Go
// type within int64's range, JSON numbers, and whole floats strictly
// between -2^63 and 2^63. A float64 can hold 2^63, which int64 cannot (the
// conversion would wrap it to -2^63), and an integer literal just below
// -2^63 rounds to -2^63 as a float, so both ends are refused as floats;
// the files' integer literals reach here as integers and are exact.
func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int64:
		return x, true
	case int32:
		return int64(x), true
	case int16:
		return int64(x), true
	case int8:
		return int64(x), true
	case uint:
		return int64(x), uint64(x) <= math.MaxInt64
	case uint64:
		return int64(x), x <= math.MaxInt64
	case uint32:
		return int64(x), true
	case uint16:
		return int64(x), true
	case uint8:
		return int64(x), true
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i, true
		}
	case string:
		return 0, false
	}
	f, ok := toNumStrict(v)
	if !ok || f != math.Trunc(f) || f <= -(1<<63) || f >= 1<<63 {
		return 0, false
	}
	return int64(f), true
}

// toNumStrict accepts numbers but not numeric strings, for variant values.
func toNumStrict(v any) (float64, bool) {
	switch v.(type) {
	case string:
		return 0, false
	case json.Number:
	}
	f, ok := toNum(v)
	return f, ok && !math.IsNaN(f) && !math.IsInf(f, 0)
}

func (c *compiler) serve(f *cflag, s Serve, field string, line int) (cserve, error) {
	n := 0
	if s.Variant != "" {
		n++
	}
	if s.Rollout != nil {
		n++
	}
	if s.Progressive != nil {
		n++
	}
	if n > 1 {
		return cserve{}, c.errf(f.key, field, line, "give only one of variant, rollout and progressive")
	}
	switch {
	case s.Rollout != nil:
		cs := cserve{kind: serveRollout}
		var total uint64
		for i, w := range s.Rollout {
			vi, err := c.variantRef(f, w.Variant, field+".rollout["+strconv.Itoa(i)+"].variant", line)
			if err != nil {
				return cs, err
			}
			cs.weights = append(cs.weights, w.Weight)
			cs.widx = append(cs.widx, vi)
			total += uint64(w.Weight)
		}
		if total == 0 {
			return cs, c.errf(f.key, field+".rollout", line, "weights must not all be zero")
		}
		return cs, nil
	case s.Progressive != nil:
		p, err := c.progressive(f, s.Progressive, field+".progressive", line)
		return cserve{kind: serveProgressive, prog: p}, err
	case s.Variant != "":
		vi, err := c.variantRef(f, s.Variant, field+".variant", line)
		return cserve{kind: serveVariant, variant: vi}, err
	}
	return cserve{kind: serveVariant, variant: f.def}, nil
}

func (c *compiler) progressive(f *cflag, p *Progressive, field string, line int) (*cprog, error) {
	cp := &cprog{}
	var err error
	if cp.variant, err = c.variantRef(f, p.Variant, field+".variant", line); err != nil {
		return nil, err
	}
	cp.otherwise = f.def
	if p.Otherwise != "" {
		if cp.otherwise, err = c.variantRef(f, p.Otherwise, field+".otherwise", line); err != nil {
			return nil, err
		}
	}
	var steps []Step
	switch {
	case (p.From != nil || p.To != nil) && p.Steps != nil:
		return nil, c.errf(f.key, field, line, "give either from and to, or steps")
	case p.From != nil || p.To != nil:
		if p.From == nil || p.To == nil {
			return nil, c.errf(f.key, field, line, "a linear ramp needs both from and to")
		}
		steps = []Step{*p.From, *p.To}
		cp.linear = true
	case len(p.Steps) > 0:
		steps = p.Steps
	default:
		return nil, c.errf(f.key, field, line, "give from and to, or steps")
	}
	for i, st := range steps {
		sf := field + ".steps[" + strconv.Itoa(i) + "]"
		if cp.linear {
			sf = field + [2]string{".from", ".to"}[i]
		}
		if st.At.IsZero() {
			return nil, c.errf(f.key, sf+".at", line, "a time is required")
		}
		if !(st.Percent >= 0 && st.Percent <= 100) {
			return nil, c.errf(f.key, sf+".percent", line, "percent %v is outside [0, 100]", st.Percent)
		}
		at := st.At.UnixNano()
		if i > 0 && at <= cp.at[i-1] {
			return nil, c.errf(f.key, sf+".at", line, "times must increase (%s is not after %s)",
				st.At.Format(time.RFC3339), steps[i-1].At.Format(time.RFC3339))
		}
		cp.at = append(cp.at, at)
		cp.share = append(cp.share, math.Round(st.Percent*percentTotal/100*1e6)/1e6)
	}
	return cp, nil
}

// link resolves prerequisites once every flag is compiled.
func (c *compiler) link(key string) error {
	f, d := c.flags[key], c.defs[key]
	for i, p := range d.Prerequisites {
		field := "prerequisites[" + strconv.Itoa(i) + "]"
		line := p.line
		if line == 0 {
			line = d.line
		}
		pf := c.flags[p.Flag]
		if pf == nil {
			return c.errf(key, field+".flag", line, "unknown flag %q", p.Flag)
		}
		if len(p.Variants) == 0 {
			return c.errf(key, field+".variants", line, "at least one variant of %q is required", p.Flag)
		}
		cp := cprereq{key: p.Flag, flag: pf, accept: make([]bool, len(pf.variants))}
		for _, v := range p.Variants {
			vi := pf.variantIndex(v)
			if vi < 0 {
				return c.errf(key, field+".variants", line, "flag %q has no variant %q", p.Flag, v)
			}
			cp.accept[vi] = true
		}
		f.prereqs = append(f.prereqs, cp)
	}
	return nil
}

// cycles rejects prerequisite cycles, which would recurse forever.
func (c *compiler) cycles(keys []string) error {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(key string) error
	visit = func(key string) error {
		switch state[key] {
		case onPath:
			i := slices.Index(path, key)
			cyc := append(slices.Clone(path[i:]), key)
			return &LoadError{File: c.sources[key], Flag: key, Line: c.defs[key].line, Field: "prerequisites",
				Err: fmt.Errorf("%w: %v", ErrCycle, cyc)}
		case done:
			return nil
		}
		state[key] = onPath
		path = append(path, key)
		for _, p := range c.flags[key].prereqs {
			if err := visit(p.key); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		state[key] = done
		return nil
	}
	for _, k := range keys {
		if err := visit(k); err != nil {
			return err
		}
	}
	return nil
}
