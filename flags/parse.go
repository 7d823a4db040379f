package flags

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxFileSize bounds a flag file or document, in bytes. A larger one is
// refused before it is read (or, for a document, parsed): about 2,800
// flags of the benchmark's shape fit; split more into several files.
const MaxFileSize = 1 << 20

// maxStructural bounds the bytes of a file that can start a YAML or JSON
// node, counted before parsing. The parsers hold about 250 bytes per node
// (yaml.Node and its strings), 30 times the size of a typical file and
// over 100 times that of a dense one ("[a,a,a,...]"), so that a file's
// size alone would let 1 MiB cost 120 MB; this count caps a parse at
// about 60 MB (two nodes per byte counted at worst: "? " is a key and its
// value; TestFileSizeBounded measures 55 MiB) while a typical file of
// MaxFileSize passes (the benchmark's shape has 46 such bytes per flag).
const maxStructural = 1 << 17

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
		data, err := readFile(p)
		if err != nil {
			return Config{}, err
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

// readFile reads a flag file of at most MaxFileSize bytes. A larger file
// is refused from its size, before any of it is read, and a file that
// grows past the limit while it is read is refused too.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &LoadError{File: path, Err: err}
	}
	defer f.Close()
	var b bytes.Buffer
	if fi, err := f.Stat(); err == nil {
		if fi.Size() > MaxFileSize {
			return nil, &LoadError{File: path, Err: tooLarge(fi.Size())}
		}
		b.Grow(int(fi.Size()) + bytes.MinRead)
	}
	if _, err := b.ReadFrom(io.LimitReader(f, MaxFileSize+1)); err != nil {
		return nil, &LoadError{File: path, Err: err}
	}
	if b.Len() > MaxFileSize {
		return nil, &LoadError{File: path, Err: tooLarge(int64(b.Len()))}
	}
	return b.Bytes(), nil
}

func tooLarge(n int64) error {
	return fmt.Errorf("%d bytes, more than MaxFileSize (%d): split the flags into several files", n, MaxFileSize)
}

// structural counts the bytes that can start a YAML or JSON node: flow
// separators, a key's colon, a list's dash, a collection's opening, an
// explicit key and an alias. Those inside strings and comments count too,
// which only overestimates.
func structural(data []byte) int {
	n := 0
	for _, c := range data {
		switch c {
		case ',', ':', '-', '[', '{', '?', '*':
			n++
		}
	}
	return n
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
	for k, o := range src.Overrides {
		if prev, ok := dst.Overrides[k]; ok {
			return &LoadError{File: file, Flag: k, Line: o.line, Field: "overrides", Err: fmt.Errorf("override also given in %s:%d", prev.file, prev.line)}
		}
		if dst.Overrides == nil {
			dst.Overrides = map[string]Override{}
		}
		dst.Overrides[k] = o
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
	if len(data) > MaxFileSize {
		return Config{}, &LoadError{File: name, Err: tooLarge(int64(len(data)))}
	}
	if n := structural(data); n > maxStructural {
		return Config{}, &LoadError{File: name, Err: fmt.Errorf("up to %d nodes, more than a file may hold (%d bytes that start one: , : - [ { ? *): split the flags into several files", n, maxStructural)}
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
		doc, err := jsonNode(data)
		if err != nil {
			return Config{}, &LoadError{File: name, Err: err}
		}
		w := &walker{file: name, budget: maxNodes, aliases: maxAliases}
		return w.config(doc)
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
	if n.Kind == yaml.ScalarNode {
		if v, ok := scalarValue(n); ok {
			return v, nil
		}
	}
	// Decode walks the value's tree, aliases expanded: charge it more.
	if w.budget -= 64; w.budget < 0 {
		return nil, w.fail(n, field, "document too large")
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
		if err != nil {
			// Above int64 but within uint64: kept exact, so that an int
			// flag refuses it rather than serving it rounded.
			if u, err := strconv.ParseUint(n.Value, 10, 64); err == nil {
				return u, true
			}
			return nil, false
		}
		if i != int64(int(i)) {
			return i, true
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
