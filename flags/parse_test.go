package flags

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestExampleFilesAgree(t *testing.T) {
	y, err := LoadFiles("testdata/flags.yaml")
	if err != nil {
		t.Fatal(err)
	}
	j, err := LoadFiles("testdata/flags.json")
	if err != nil {
		t.Fatal(err)
	}
	strip := func(c Config) Config {
		for k, f := range c.Flags {
			f.line, f.file = 0, ""
			for i := range f.Rules {
				f.Rules[i].line = 0
				stripCond(f.Rules[i].If)
			}
			for i := range f.Prerequisites {
				f.Prerequisites[i].line = 0
			}
			c.Flags[k] = f
		}
		for k, sg := range c.Segments {
			sg.line, sg.file = 0, ""
			stripCond(sg.If)
			c.Segments[k] = sg
		}
		return c
	}
	if !reflect.DeepEqual(strip(y), strip(j)) {
		t.Errorf("YAML and JSON examples differ:\n%#v\n%#v", y, j)
	}
	s, clk := newStore(t, y)
	clk.t = time.Date(2026, 1, 6, 0, 0, 0, 0, time.UTC) // half way through the ramp
	if d := s.BoolDetail("new-checkout", EvalContext{TargetingKey: "alice"}, false); !d.Value || d.Reason != ReasonTargeted {
		t.Errorf("alice (staff): %+v", d)
	}
	if d := s.BoolDetail("new-checkout", EvalContext{TargetingKey: "bob", Attributes: map[string]any{"email": "bob@corp.example"}}, false); !d.Value {
		t.Errorf("bob (staff by email): %+v", d)
	}
	if d := s.ObjectDetail("theme", EvalContext{}, nil); d.Reason != ReasonDisabled || d.Value.(map[string]any)["bg"] != "white" {
		t.Errorf("theme: %+v", d)
	}
	if d := s.IntDetail("max-items", EvalContext{Attributes: map[string]any{"tenant": "t1"}}, 0); d.Reason != ReasonSplit {
		t.Errorf("max-items: %+v", d)
	}
	if st := s.Status("new-checkout"); st.Percent == nil || *st.Percent != 50 {
		t.Errorf("new-checkout ramp at %v, want 50%%", st.Percent)
	}
}

func stripCond(c *Condition) {
	if c == nil {
		return
	}
	c.line = 0
	for i := range c.All {
		stripCond(&c.All[i])
	}
	for i := range c.Any {
		stripCond(&c.Any[i])
	}
	stripCond(c.Not)
}

// TestBadFiles: every error names the file, the flag (or segment), the line
// and the field, and a rejected file leaves the Store as it was.
func TestBadFiles(t *testing.T) {
	tests := []struct {
		name, file, body string
		flag, field      string
		line             int
		msg              string
	}{
		{"yaml syntax", "f.yaml", "flags:\n  a:\n    variants: {on: true\n", "", "", 2, "did not find"},
		{"json syntax", "f.json", "{\n  \"flags\": {\n    \"a\": {,}\n  }\n}\n", "", "", 3, "invalid character"},
		{"json trailing comma", "f.json", "{\"flags\": {},\n}", "", "", 2, "invalid character"},
		{"top-level typo", "f.yaml", "flag:\n  a: {}\n", "", "flag", 1, "unknown field"},
		{"field typo", "f.yaml", "flags:\n  a:\n    variants: {on: true}\n    defualt: on\n", "a", "defualt", 4, "unknown field"},
		{"unknown type", "f.yaml", "flags:\n  a:\n    type: boolean2\n", "a", "type", 3, "unknown type"},
		{"duplicate key", "f.yaml", "flags:\n  a:\n    default: on\n    default: off\n", "a", "default", 4, "twice"},
		{"variants not a map", "f.yaml", "flags:\n  a:\n    variants: [true, false]\n", "a", "variants", 3, "expected a mapping"},
		{"bad weight", "f.yaml", "flags:\n  a:\n    variants: {on: true}\n    default: on\n    serve:\n      rollout:\n        - {variant: on, weight: -1}\n", "a", "serve.rollout[0].weight", 7, "whole number"},
		{"bad time", "f.yaml", "flags:\n  a:\n    variants: {on: true}\n    default: on\n    serve:\n      progressive:\n        variant: on\n        steps:\n          - {at: tomorrow, percent: 5}\n", "a", "serve.progressive.steps[0].at", 9, "RFC 3339"},
		{"empty condition", "f.yaml", "flags:\n  a:\n    rules:\n      - if: {}\n        serve: on\n", "a", "rules[0].if", 4, "empty condition"},
		{"unknown operator", "f.yaml", "flags:\n  a:\n    variants: {on: true}\n    default: on\n    rules:\n      - if:\n          any:\n            - {attr: x, op: equal, value: 1}\n        serve: on\n", "a", "rules[0].if.any[0].op", 8, "unknown operator"},
		{"bad regex", "f.json", "{\"flags\": {\"a\": {\"variants\": {\"on\": true}, \"default\": \"on\",\n \"rules\": [\n {\"if\": {\"attr\": \"x\", \"op\": \"matches\", \"value\": \"(\"}, \"serve\": \"on\"}]}}}", "a", "rules[0].if.value", 3, "missing closing"},
		{"unknown variant", "f.yaml", "flags:\n  a:\n    variants: {on: true, off: false}\n    default: on\n    rules:\n      - if: {attr: x, op: exists}\n        serve: maybe\n", "a", "rules[0].serve.variant", 6, "unknown variant"},
		{"wrong value type", "f.yaml", "flags:\n  a:\n    type: int\n    variants: {one: 1, two: two}\n    default: one\n", "a", "variants.two", 2, "not an integer"},
		{"cycle", "f.yaml", "flags:\n  a:\n    variants: {on: true}\n    default: on\n    prerequisites: [{flag: b, variants: [on]}]\n  b:\n    variants: {on: true}\n    default: on\n    prerequisites: [{flag: a, variants: [on]}]\n", "a", "prerequisites", 2, "cycle"},
		{"json duplicate key", "f.json", "{\"flags\": {\"a\": {\"default\": \"x\",\n  \"default\": \"y\"}}}", "a", "default", 2, "twice"},
		{"json wrong shape", "f.json", "{\"flags\": {\n \"a\": {\"variants\": {\"on\": true}, \"default\": \"on\",\n \"rules\": {\"if\": 1}}}}", "a", "rules", 3, "expected a list"},
		{"alias bomb", "f.yaml", bomb(), "f", "*", 0, "too many aliases"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newStore(t, Config{Flags: map[string]Flag{"keep": {Variants: onOff, Default: "on"}}})
			var rejected []error
			s.onReject = func(err error) { rejected = append(rejected, err) }
			path := t.TempDir() + "/" + tc.file
			writeFile(t, path, tc.body)
			cfg, err := LoadFiles(path)
			if err == nil {
				err = s.Set("test", cfg)
			} else {
				s.reject("test", err)
			}
			var le *LoadError
			if !errors.As(err, &le) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a *LoadError", err)
			}
			if le.File != path || le.Flag != tc.flag || (tc.field != "*" && le.Field != tc.field) || (tc.line != 0 && le.Line != tc.line) {
				t.Errorf("got file %q flag %q field %q line %d; want %q %q %q %d\n%v",
					le.File, le.Flag, le.Field, le.Line, path, tc.flag, tc.field, tc.line, err)
			}
			if !strings.Contains(err.Error(), tc.msg) || !strings.Contains(err.Error(), path) {
				t.Errorf("message %q does not say %q and name the file", err, tc.msg)
			}
			if !s.Bool("keep", EvalContext{}, false) || len(rejected) != 1 {
				t.Errorf("last good configuration lost or rejection not reported (%d callbacks)", len(rejected))
			}
		})
	}
}

// bomb nests conditions through aliases: 10^12 nodes once expanded.
func bomb() string {
	var b strings.Builder
	b.WriteString("flags:\n  f:\n    variants: {v: true}\n    default: v\n    rules:\n")
	b.WriteString("      - {if: &c0 {attr: x, op: exists}, serve: v}\n")
	for i := 1; i < 12; i++ {
		b.WriteString("      - {serve: v, if: &c" + itoa(uint64(i)) + " {any: [")
		for j := 0; j < 10; j++ {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString("*c" + itoa(uint64(i-1)))
		}
		b.WriteString("]}}\n")
	}
	return b.String()
}

func TestDuplicateAcrossFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir+"/a.yaml", "flags:\n  x:\n    variants: {on: true}\n    default: on\n")
	writeFile(t, dir+"/b.yaml", "\nflags:\n  x:\n    variants: {on: true}\n    default: on\n")
	_, err := LoadFiles(dir+"/a.yaml", dir+"/b.yaml")
	var le *LoadError
	if !errors.As(err, &le) || le.Flag != "x" || le.Line != 3 || !strings.Contains(err.Error(), dir+"/a.yaml:2") {
		t.Errorf("err = %v, want x in b.yaml:3 also defined in a.yaml:2", err)
	}
	// Code and files are separate sources: defining a flag in both is refused.
	s, _ := newStore(t, Config{})
	cfg, err := LoadFiles(dir + "/a.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Set("files", cfg); err != nil {
		t.Fatal(err)
	}
	err = s.Set("code", Config{Flags: map[string]Flag{"x": {Variants: onOff, Default: "on"}}})
	if !errors.As(err, &le) || !strings.Contains(err.Error(), "also defined in "+dir+"/a.yaml") {
		t.Errorf("err = %v, want a conflict with a.yaml", err)
	}
}

func TestEmptyFile(t *testing.T) {
	for _, body := range []string{"", "# only a comment\n"} {
		if _, err := Parse("empty.yaml", []byte(body)); !errors.Is(err, ErrInvalid) {
			t.Errorf("%q: err = %v, want ErrInvalid", body, err)
		}
	}
	cfg, err := Parse("none.yaml", []byte("flags: {}\n"))
	if err != nil || len(cfg.Flags) != 0 {
		t.Errorf("flags: {}: %v, %v", cfg, err)
	}
}

func TestDuplicateInLargeMapping(t *testing.T) {
	var b strings.Builder
	b.WriteString("flags:\n")
	for i := range 100 {
		b.WriteString("  f" + itoa(uint64(i)) + ": {variants: {on: true}, default: on}\n")
	}
	good := b.String()
	if cfg, err := Parse("big.yaml", []byte(good)); err != nil || len(cfg.Flags) != 100 {
		t.Fatalf("100 flags: %d, %v", len(cfg.Flags), err)
	}
	for _, dup := range []string{"f3", "f70", "f99"} {
		_, err := Parse("big.yaml", []byte(good+"  "+dup+": {variants: {on: true}, default: on}\n"))
		var le *LoadError
		if !errors.As(err, &le) || le.Line != 102 || le.Field != "flags."+dup {
			t.Errorf("duplicate %s: %v", dup, err)
		}
	}
}

func TestJSONScalars(t *testing.T) {
	data := "{\"flags\": {\"f\\u0061\": {\"type\": \"object\", \"default\": \"v\",\r\n\t\"variants\": {\"v\": {\"s\": \"\\u00e9\\\"x\\\\\\/\", \"n\": -1.5e2, \"i\": 12, \"b\": false, \"z\": null, \"l\": [1, [], {}]}}}}}"
	cfg, err := Parse("x.json", []byte(data))
	if err != nil {
		t.Fatal(err)
	}
	f, ok := cfg.Flags["fa"]
	if !ok || f.line != 1 {
		t.Fatalf("flag key with an escape: %+v", cfg.Flags)
	}
	v := f.Variants["v"].(map[string]any)
	want := map[string]any{"s": "é\"x\\/", "n": -150.0, "i": 12, "b": false, "z": nil, "l": []any{1, []any{}, map[string]any{}}}
	if !reflect.DeepEqual(v, want) {
		t.Errorf("got %#v\nwant %#v", v, want)
	}
}
