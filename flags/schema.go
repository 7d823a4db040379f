package flags

import (
	"math"

	"gopkg.in/yaml.v3"
)

// The walkers below read the file schema documented in doc.go from a
// yaml.Node tree, so that every error carries its line and field path.

func (w *walker) config(doc *yaml.Node) (Config, error) {
	cfg := Config{Flags: map[string]Flag{}, Segments: map[string]Segment{}}
	if doc.Kind == 0 || (doc.Kind == yaml.DocumentNode && len(doc.Content) == 0) {
		return Config{}, w.fail(nil, "", "no document (write \"flags: {}\" for no flags)")
	}
	top, err := w.mapping(doc, "", "flags", "segments", "overrides", "$schema")
	if err != nil {
		return Config{}, err
	}
	for _, e := range top {
		switch e.key {
		case "segments":
			err = entries(w, e.v, "segments", &w.segment, w.segmentDef, func(key string, line int, sg Segment) {
				sg.line, sg.file = line, w.file
				cfg.Segments[key] = sg
			})
		case "flags":
			err = entries(w, e.v, "flags", &w.flag, w.flagDef, func(key string, line int, f Flag) {
				f.line, f.file = line, w.file
				cfg.Flags[key] = f
			})
		case "overrides":
			cfg.Overrides = map[string]Override{}
			err = entries(w, e.v, "overrides", &w.flag, w.overrideDef, func(key string, line int, o Override) {
				o.line, o.file = line, w.file
				cfg.Overrides[key] = o
			})
		}
		if err != nil {
			return Config{}, err
		}
	}
	return cfg, nil
}

// entries reads a section of named definitions (flags, segments,
// overrides) with read, naming each in the walker's errors through ctx
// while it is read, and hands each to keep with its key's line.
func entries[T any](w *walker, n *yaml.Node, field string, ctx *string, read func(*yaml.Node) (T, error), keep func(key string, line int, v T)) error {
	es, err := w.mapping(n, field)
	if err != nil {
		return err
	}
	for _, e := range es {
		*ctx = e.key
		v, err := read(e.v)
		if err != nil {
			return err
		}
		keep(e.key, e.k.Line, v)
	}
	*ctx = ""
	return nil
}

// overrideDef reads one entry of the overrides section:
// {disabled: <bool>, percent: {variant: <v>, percent: <0-100>}}.
func (w *walker) overrideDef(n *yaml.Node) (Override, error) {
	var o Override
	fields, err := w.mapping(n, "overrides", "disabled", "percent")
	if err != nil {
		return o, err
	}
	for _, e := range fields {
		switch e.key {
		case "disabled":
			var b bool
			if b, err = w.boolean(e.v, "overrides.disabled"); err == nil {
				o.Disabled = &b
			}
		case "percent":
			var pf []kv
			if pf, err = w.mapping(e.v, "overrides.percent", "variant", "percent"); err != nil {
				return o, err
			}
			p := &Percent{Percent: math.NaN()}
			for _, f := range pf {
				switch f.key {
				case "variant":
					p.Variant, err = w.str(f.v, "overrides.percent.variant")
				case "percent":
					if p.Percent, err = w.number(f.v, "overrides.percent.percent"); err == nil && !(p.Percent >= 0 && p.Percent <= 100) {
						err = w.fail(f.v, "overrides.percent.percent", "percent %v is outside [0, 100]", p.Percent)
					}
				}
				if err != nil {
					return o, err
				}
			}
			if p.Variant == "" || math.IsNaN(p.Percent) {
				return o, w.fail(e.v, "overrides.percent", "give both variant and percent")
			}
			o.Percent = p
		}
		if err != nil {
			return o, err
		}
	}
	if o.IsZero() {
		return o, w.fail(n, "overrides", "an override needs disabled, percent or both")
	}
	return o, nil
}

var typeByName = map[string]Type{"bool": TypeBool, "boolean": TypeBool, "string": TypeString,
	"int": TypeInt, "integer": TypeInt, "float": TypeFloat, "number": TypeFloat, "object": TypeObject, "json": TypeObject}

func (w *walker) flagDef(n *yaml.Node) (Flag, error) {
	var f Flag
	fields, err := w.mapping(n, "", "type", "variants", "default", "disabled", "offVariant", "salt",
		"bucketBy", "prerequisites", "rules", "serve", "metadata", "description")
	if err != nil {
		return f, err
	}
	typed := false
	for _, e := range fields {
		switch e.key {
		case "type":
			s, err := w.str(e.v, "type")
			if err != nil {
				return f, err
			}
			t, ok := typeByName[s]
			if !ok {
				return f, w.fail(e.v, "type", "unknown type %q (expected bool, string, int, float or object)", s)
			}
			f.Type, typed = t, true
		case "variants":
			vs, err := w.mapping(e.v, "variants")
			if err != nil {
				return f, err
			}
			f.Variants = make(map[string]any, len(vs))
			for _, v := range vs {
				if f.Variants[v.key], err = w.value(v.v, "variants."+v.key); err != nil {
					return f, err
				}
			}
		case "default":
			f.Default, err = w.str(e.v, "default")
		case "disabled":
			f.Disabled, err = w.boolean(e.v, "disabled")
		case "offVariant":
			f.OffVariant, err = w.str(e.v, "offVariant")
		case "salt":
			f.Salt, err = w.str(e.v, "salt")
		case "bucketBy":
			f.BucketBy, err = w.str(e.v, "bucketBy")
		case "description":
			_, err = w.str(e.v, "description")
		case "metadata":
			var v any
			if v, err = w.value(e.v, "metadata"); err == nil {
				m, ok := v.(map[string]any)
				if !ok {
					return f, w.fail(e.v, "metadata", "expected a mapping")
				}
				f.Metadata = m
			}
		case "prerequisites":
			items, err := w.sequence(e.v, "prerequisites")
			if err != nil {
				return f, err
			}
			for i, it := range items {
				p, err := w.prereq(it, index("prerequisites", i))
				if err != nil {
					return f, err
				}
				f.Prerequisites = append(f.Prerequisites, p)
			}
		case "rules":
			items, err := w.sequence(e.v, "rules")
			if err != nil {
				return f, err
			}
			for i, it := range items {
				r, err := w.rule(it, index("rules", i))
				if err != nil {
					return f, err
				}
				f.Rules = append(f.Rules, r)
			}
		case "serve":
			f.Serve, err = w.serve(e.v, "serve")
		}
		if err != nil {
			return f, err
		}
	}
	if !typed {
		f.Type = inferType(f.Variants)
	}
	return f, nil
}

// inferType picks the narrowest type all variants share.
func inferType(vs map[string]any) Type {
	t := TypeBool
	first := true
	for _, v := range vs {
		var vt Type
		switch x := v.(type) {
		case bool:
			vt = TypeBool
		case string:
			vt = TypeString
		case int, int64, uint64:
			vt = TypeInt
		case float64:
			vt = TypeFloat
			if x == math.Trunc(x) {
				vt = TypeInt
			}
		default:
			return TypeObject
		}
		switch {
		case first:
			t, first = vt, false
		case t == vt:
		case (t == TypeInt && vt == TypeFloat) || (t == TypeFloat && vt == TypeInt):
			t = TypeFloat
		default:
			return TypeObject
		}
	}
	return t
}

func (w *walker) prereq(n *yaml.Node, field string) (Prerequisite, error) {
	p := Prerequisite{line: n.Line}
	fields, err := w.mapping(n, field, "flag", "variants")
	if err != nil {
		return p, err
	}
	for _, e := range fields {
		switch e.key {
		case "flag":
			p.Flag, err = w.str(e.v, field+".flag")
		case "variants":
			p.Variants, err = w.strs(e.v, field+".variants")
		}
		if err != nil {
			return p, err
		}
	}
	return p, nil
}

func (w *walker) rule(n *yaml.Node, field string) (Rule, error) {
	r := Rule{line: n.Line}
	fields, err := w.mapping(n, field, "name", "if", "serve")
	if err != nil {
		return r, err
	}
	for _, e := range fields {
		switch e.key {
		case "name":
			r.Name, err = w.str(e.v, field+".name")
		case "if":
			var c Condition
			c, err = w.cond(e.v, field+".if", 0)
			r.If = &c
		case "serve":
			r.Serve, err = w.serve(e.v, field+".serve")
		}
		if err != nil {
			return r, err
		}
	}
	return r, nil
}

func (w *walker) cond(n *yaml.Node, field string, depth int) (Condition, error) {
	c := Condition{line: n.Line}
	if depth > maxDepth {
		return c, w.fail(n, field, "conditions nested deeper than %d", maxDepth)
	}
	fields, err := w.mapping(n, field, "attr", "op", "value", "values", "all", "any", "not", "segment")
	if err != nil {
		return c, err
	}
	list := func(v *yaml.Node, f string) ([]Condition, error) {
		items, err := w.sequence(v, f)
		if err != nil {
			return nil, err
		}
		out := make([]Condition, 0, len(items))
		for i, it := range items {
			k, err := w.cond(it, index(f, i), depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, k)
		}
		return out, nil
	}
	for _, e := range fields {
		f := field + "." + e.key
		switch e.key {
		case "attr":
			c.Attr, err = w.str(e.v, f)
		case "op":
			var s string
			s, err = w.str(e.v, f)
			c.Op = Op(s)
		case "value":
			c.Value, err = w.value(e.v, f)
			if err == nil && c.Value == nil {
				err = w.fail(e.v, f, "value is null")
			}
		case "values":
			var items []*yaml.Node
			if items, err = w.sequence(e.v, f); err == nil {
				c.Values = make([]any, 0, len(items))
				for i, it := range items {
					var v any
					if v, err = w.value(it, index(f, i)); err != nil {
						break
					}
					c.Values = append(c.Values, v)
				}
			}
		case "all":
			c.All, err = list(e.v, f)
			if c.All == nil && err == nil {
				c.All = []Condition{}
			}
		case "any":
			c.Any, err = list(e.v, f)
			if c.Any == nil && err == nil {
				c.Any = []Condition{}
			}
		case "not":
			var k Condition
			k, err = w.cond(e.v, f, depth+1)
			c.Not = &k
		case "segment":
			c.Segment, err = w.str(e.v, f)
		}
		if err != nil {
			return c, err
		}
	}
	if c.Op == "" && c.Attr == "" && c.All == nil && c.Any == nil && c.Not == nil && c.Segment == "" {
		return c, w.fail(n, field, "empty condition")
	}
	return c, nil
}

func (w *walker) serve(n *yaml.Node, field string) (Serve, error) {
	var s Serve
	rn, err := w.node(n, field)
	if err != nil {
		return s, err
	}
	if rn.Kind == yaml.ScalarNode { // "serve: on" is short for "serve: {variant: on}"
		s.Variant, err = w.str(rn, field)
		return s, err
	}
	fields, err := w.mapping(rn, field, "variant", "rollout", "progressive")
	if err != nil {
		return s, err
	}
	for _, e := range fields {
		f := field + "." + e.key
		switch e.key {
		case "variant":
			s.Variant, err = w.str(e.v, f)
		case "rollout":
			var items []*yaml.Node
			if items, err = w.sequence(e.v, f); err != nil {
				return s, err
			}
			s.Rollout = []Weight{}
			for i, it := range items {
				wt, err := w.weight(it, index(f, i))
				if err != nil {
					return s, err
				}
				s.Rollout = append(s.Rollout, wt)
			}
		case "progressive":
			s.Progressive, err = w.progressive(e.v, f)
		}
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

func (w *walker) weight(n *yaml.Node, field string) (Weight, error) {
	var wt Weight
	fields, err := w.mapping(n, field, "variant", "weight")
	if err != nil {
		return wt, err
	}
	for _, e := range fields {
		switch e.key {
		case "variant":
			wt.Variant, err = w.str(e.v, field+".variant")
		case "weight":
			var f float64
			if f, err = w.number(e.v, field+".weight"); err == nil {
				if f < 0 || f != math.Trunc(f) || f > math.MaxUint32 {
					err = w.fail(e.v, field+".weight", "weight must be a whole number from 0 to %d", uint32(math.MaxUint32))
				}
				wt.Weight = uint32(f)
			}
		}
		if err != nil {
			return wt, err
		}
	}
	return wt, nil
}

func (w *walker) progressive(n *yaml.Node, field string) (*Progressive, error) {
	p := &Progressive{}
	fields, err := w.mapping(n, field, "variant", "otherwise", "from", "to", "steps")
	if err != nil {
		return nil, err
	}
	for _, e := range fields {
		f := field + "." + e.key
		switch e.key {
		case "variant":
			p.Variant, err = w.str(e.v, f)
		case "otherwise":
			p.Otherwise, err = w.str(e.v, f)
		case "from", "to":
			var st Step
			if st, err = w.step(e.v, f); err == nil {
				if e.key == "from" {
					p.From = &st
				} else {
					p.To = &st
				}
			}
		case "steps":
			var items []*yaml.Node
			if items, err = w.sequence(e.v, f); err != nil {
				return nil, err
			}
			p.Steps = []Step{}
			for i, it := range items {
				st, err := w.step(it, index(f, i))
				if err != nil {
					return nil, err
				}
				p.Steps = append(p.Steps, st)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (w *walker) step(n *yaml.Node, field string) (Step, error) {
	var st Step
	fields, err := w.mapping(n, field, "at", "percent")
	if err != nil {
		return st, err
	}
	for _, e := range fields {
		switch e.key {
		case "at":
			st.At, err = w.timestamp(e.v, field+".at")
		case "percent":
			st.Percent, err = w.number(e.v, field+".percent")
		}
		if err != nil {
			return st, err
		}
	}
	return st, nil
}

func (w *walker) segmentDef(n *yaml.Node) (Segment, error) {
	var sg Segment
	fields, err := w.mapping(n, "", "keys", "excluded", "if", "description")
	if err != nil {
		return sg, err
	}
	for _, e := range fields {
		switch e.key {
		case "keys":
			sg.Keys, err = w.strs(e.v, "keys")
		case "excluded":
			sg.Excluded, err = w.strs(e.v, "excluded")
		case "description":
			_, err = w.str(e.v, "description")
		case "if":
			var c Condition
			c, err = w.cond(e.v, "if", 0)
			sg.If = &c
		}
		if err != nil {
			return sg, err
		}
	}
	return sg, nil
}
