package flags

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// maxNodes bounds the work one file may cause, aliases included, so that
// a YAML alias bomb is an error rather than a hang.
const maxNodes = 1 << 20

// maxAliases bounds alias dereferences per file: sharing a condition
// among a few hundred flags is fine, an alias bomb is not.
const maxAliases = 10000

// maxDepth bounds condition nesting.
const maxDepth = 64

// LoadFiles reads and parses flag files (JSON for ".json", YAML
// otherwise) into one Config. A flag or segment defined in two files is an
// error. The result is checked for syntax and shape only; Store.Set checks
// references, operators and cycles.
func LoadFiles(paths ...string) (Config, error) {
	var out Config
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return Config{}, &LoadError{File: p, Err: err}
		}
		cfg, err := Parse(p, data)
		if err != nil {
			return Config{}, err
		}
		if err := merge(&out, cfg, p); err != nil {
			return Config{}, err
		}
	}
	return out, nil
}

func merge(dst *Config, src Config, file string) error {
	if dst.Flags == nil {
		dst.Flags = map[string]Flag{}
	}
	if dst.Segments == nil {
		dst.Segments = map[string]Segment{}
	}
	for k, f := range src.Flags {
		if prev, ok := dst.Flags[k]; ok {
			return &LoadError{File: file, Flag: k, Line: f.line, Err: fmt.Errorf("flag also defined in %s:%d", prev.file, prev.line)}
		}
		dst.Flags[k] = f
	}
	for k, sg := range src.Segments {
		if prev, ok := dst.Segments[k]; ok {
			return &LoadError{File: file, Segment: k, Line: sg.line, Err: fmt.Errorf("segment also defined in %s:%d", prev.file, prev.line)}
		}
		dst.Segments[k] = sg
	}
	return nil
}

// Parse parses one flag file; name is used in errors and picks the syntax
// (".json" is JSON, anything else YAML). The schema is documented in the
// package documentation.
//
// An empty file is an error, not an empty configuration: it is what a
// reader sees between an in-place writer's truncate and write, and
// accepting it would delete every flag for a moment. A file that defines
// no flags says so: "flags: {}".
func Parse(name string, data []byte) (Config, error) {
	if len(data) == 0 {
		return Config{}, &LoadError{File: name, Err: errors.New("file is empty (write \"flags: {}\" for no flags)")}
	}
	if strings.EqualFold(filepath.Ext(name), ".json") {
		// YAML accepts some input JSON rejects (trailing commas, comments);
		// a JSON file must be JSON, and JSON's errors carry an offset.
		var raw json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil {
			line := 0
			var se *json.SyntaxError
			if errors.As(err, &se) {
				line = 1 + bytes.Count(data[:min(int(se.Offset), len(data))], []byte{'\n'})
			}
			return Config{}, &LoadError{File: name, Line: line, Err: err}
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Config{}, &LoadError{File: name, Line: yamlErrLine(err), Err: err}
	}
	w := &walker{file: name, budget: maxNodes, aliases: maxAliases}
	return w.config(&doc)
}

// yamlErrLine digs the line out of yaml.v3's "yaml: line N: ..." errors.
func yamlErrLine(err error) int {
	s := err.Error()
	i := strings.Index(s, "line ")
	if i < 0 {
		return 0
	}
	s = s[i+5:]
	j := 0
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	n, _ := strconv.Atoi(s[:j])
	return n
}

type walker struct {
	file    string
	flag    string
	segment string
	budget  int
	aliases int
	seen    map[string]bool // keys of the large mapping seenFor
	seenFor *kv
}

type kv struct {
	key string
	k   *yaml.Node
	v   *yaml.Node
}

func (w *walker) fail(n *yaml.Node, field, format string, args ...any) *LoadError {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &LoadError{File: w.file, Flag: w.flag, Segment: w.segment, Line: line, Field: field, Err: fmt.Errorf(format, args...)}
}

// node resolves documents and aliases and charges the budget.
func (w *walker) node(n *yaml.Node, field string) (*yaml.Node, error) {
	for i := 0; n != nil && (n.Kind == yaml.AliasNode || n.Kind == yaml.DocumentNode); i++ {
		if i > 100 {
			return nil, w.fail(n, field, "alias chain too long")
		}
		if n.Kind == yaml.AliasNode {
			if w.aliases--; w.aliases < 0 {
				return nil, w.fail(n, field, "too many aliases (at most %d)", maxAliases)
			}
			n = n.Alias
		} else if len(n.Content) == 1 {
			n = n.Content[0]
		} else {
			return nil, w.fail(n, field, "empty document")
		}
	}
	if n == nil {
		return nil, w.fail(nil, field, "missing value")
	}
	if w.budget--; w.budget < 0 {
		return nil, w.fail(n, field, "document too large or too many aliases")
	}
	return n, nil
}

func (w *walker) mapping(n *yaml.Node, field string, allowed ...string) ([]kv, error) {
	n, err := w.node(n, field)
	if err != nil {
		return nil, err
	}
	if n.Kind != yaml.MappingNode {
		return nil, w.fail(n, field, "expected a mapping, found %s", kindName(n))
	}
	out := make([]kv, 0, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, err := w.node(n.Content[i], field)
		if err != nil {
			return nil, err
		}
		if k.Kind != yaml.ScalarNode {
			return nil, w.fail(k, field, "mapping keys must be strings")
		}
		if k.Tag == "!!merge" {
			return nil, w.fail(k, field, "merge keys (<<) are not supported")
		}
		var dup bool
		if len(out) < 64 {
			dup = slices.ContainsFunc(out, func(e kv) bool { return e.key == k.Value })
		} else {
			dup = w.seenLate(out, k.Value)
		}
		if dup {
			return nil, w.fail(k, join(field, k.Value), "key defined twice")
		}
		if allowed != nil && !contains(allowed, k.Value) {
			return nil, w.fail(k, join(field, k.Value), "unknown field (expected one of %s)", strings.Join(allowed, ", "))
		}
		out = append(out, kv{k.Value, k, n.Content[i+1]})
	}
	return out, nil
}

// seenLate checks for a duplicate key in a large mapping (the flags or
// segments of a big file) with a set rather than a scan.
func (w *walker) seenLate(out []kv, key string) bool {
	if w.seen == nil || w.seenFor != &out[0] {
		w.seen = make(map[string]bool, len(out))
		for _, e := range out {
			w.seen[e.key] = true
		}
		w.seenFor = &out[0]
	}
	if w.seen[key] {
		return true
	}
	w.seen[key] = true
	return false
}

func (w *walker) sequence(n *yaml.Node, field string) ([]*yaml.Node, error) {
	n, err := w.node(n, field)
	if err != nil {
		return nil, err
	}
	if n.Kind != yaml.SequenceNode {
		return nil, w.fail(n, field, "expected a list, found %s", kindName(n))
	}
	return n.Content, nil
}

func (w *walker) scalar(n *yaml.Node, field string) (*yaml.Node, error) {
	n, err := w.node(n, field)
	if err != nil {
		return nil, err
	}
	if n.Kind != yaml.ScalarNode {
		return nil, w.fail(n, field, "expected a scalar, found %s", kindName(n))
	}
	return n, nil
}

func (w *walker) str(n *yaml.Node, field string) (string, error) {
	n, err := w.scalar(n, field)
	if err != nil {
		return "", err
	}
	if n.Tag == "!!null" {
		return "", w.fail(n, field, "expected a string, found null")
	}
	return n.Value, nil
}

func (w *walker) strs(n *yaml.Node, field string) ([]string, error) {
	items, err := w.sequence(n, field)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		s, err := w.str(it, index(field, i))
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func (w *walker) boolean(n *yaml.Node, field string) (bool, error) {
	n, err := w.scalar(n, field)
	if err != nil {
		return false, err
	}
	b, err := strconv.ParseBool(n.Value)
	if err != nil || n.Tag != "!!bool" {
		return false, w.fail(n, field, "expected true or false, found %q", n.Value)
	}
	return b, nil
}

func (w *walker) number(n *yaml.Node, field string) (float64, error) {
	n, err := w.scalar(n, field)
	if err != nil {
		return 0, err
	}
	f, err := strconv.ParseFloat(n.Value, 64)
	if err != nil || (n.Tag != "!!int" && n.Tag != "!!float") || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, w.fail(n, field, "expected a number, found %q", n.Value)
	}
	return f, nil
}

func (w *walker) timestamp(n *yaml.Node, field string) (time.Time, error) {
	s, err := w.str(n, field)
	if err != nil {
		return time.Time{}, err
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, w.fail(n, field, "%q is not an RFC 3339 time (2006-01-02T15:04:05Z07:00)", s)
}

// value decodes any scalar or structure as JSON-like Go values.
func (w *walker) value(n *yaml.Node, field string) (any, error) {
	n, err := w.node(n, field)
	if err != nil {
		return nil, err
	}
	if w.budget -= 64; w.budget < 0 {
		return nil, w.fail(n, field, "document too large")
	}
	if n.Kind == yaml.ScalarNode {
		if v, ok := scalarValue(n); ok {
			return v, nil
		}
	}
	var v any
	if err := n.Decode(&v); err != nil {
		return nil, w.fail(n, field, "%v", err)
	}
	return normalize(v), nil
}

// scalarValue resolves the common scalars without a yaml decoder, which
// costs an allocation-heavy setup per call; anything unusual (timestamps,
// hex, overflow...) is left to Decode.
func scalarValue(n *yaml.Node) (any, bool) {
	switch n.ShortTag() {
	case "!!str":
		return n.Value, true
	case "!!bool":
		b, err := strconv.ParseBool(n.Value)
		return b, err == nil
	case "!!int":
		i, err := strconv.ParseInt(n.Value, 10, 64)
		if err != nil || i != int64(int(i)) {
			return nil, false
		}
		return int(i), true
	case "!!float":
		f, err := strconv.ParseFloat(n.Value, 64)
		return f, err == nil
	case "!!null":
		return nil, true
	}
	return nil, false
}

// normalize turns YAML's map[any]any (non-string keys) into map[string]any
// so that object values look like decoded JSON.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalize(e)
		}
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = normalize(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = normalize(e)
		}
	}
	return v
}

func (w *walker) config(doc *yaml.Node) (Config, error) {
	cfg := Config{Flags: map[string]Flag{}, Segments: map[string]Segment{}}
	if doc.Kind == 0 || (doc.Kind == yaml.DocumentNode && len(doc.Content) == 0) {
		return Config{}, w.fail(nil, "", "no document (write \"flags: {}\" for no flags)")
	}
	top, err := w.mapping(doc, "", "flags", "segments", "$schema")
	if err != nil {
		return Config{}, err
	}
	for _, e := range top {
		switch e.key {
		case "segments":
			segs, err := w.mapping(e.v, "segments")
			if err != nil {
				return Config{}, err
			}
			for _, s := range segs {
				w.segment = s.key
				sg, err := w.segmentDef(s.v)
				if err != nil {
					return Config{}, err
				}
				sg.line, sg.file = s.k.Line, w.file
				cfg.Segments[s.key] = sg
			}
			w.segment = ""
		case "flags":
			flags, err := w.mapping(e.v, "flags")
			if err != nil {
				return Config{}, err
			}
			for _, f := range flags {
				w.flag = f.key
				fl, err := w.flagDef(f.v)
				if err != nil {
					return Config{}, err
				}
				fl.line, fl.file = f.k.Line, w.file
				cfg.Flags[f.key] = fl
			}
			w.flag = ""
		}
	}
	return cfg, nil
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

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		return fmt.Sprintf("the scalar %q", n.Value)
	}
	return "nothing"
}

func join(field, key string) string {
	if field == "" {
		return key
	}
	return field + "." + key
}

func index(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
