package flags

import (
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestIntVariantRange: an int flag serves its values exactly over the
// whole int64 range and refuses anything outside it, from a file or from
// code. 2^63 used to be accepted and served as -2^63.
func TestIntVariantRange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ints.yaml")
	writeFile(t, path, "flags:\n  edge:\n    type: int\n    variants: {max: 9223372036854775807, min: -9223372036854775808}\n    default: max\n")
	cfg, err := LoadFiles(path)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := newStore(t, cfg)
	if v := s.Int("edge", EvalContext{}, 0); v != math.MaxInt64 {
		t.Errorf("max served as %d", v)
	}
	if err := s.SetPercent("edge", "min", 100); err != nil {
		t.Fatal(err)
	}
	if v := s.Int("edge", EvalContext{TargetingKey: "u"}, 0); v != math.MinInt64 {
		t.Errorf("min served as %d", v)
	}

	for _, body := range []string{
		"flags:\n  big:\n    type: int\n    variants: {v: 9223372036854775808}\n    default: v\n",
		"flags:\n  big:\n    type: int\n    variants: {v: -9223372036854775809}\n    default: v\n",
		"flags:\n  big:\n    type: int\n    variants: {v: 1.0e19}\n    default: v\n",
		"{\"flags\": {\"big\": {\"type\": \"int\", \"variants\": {\"v\": 9223372036854775808}, \"default\": \"v\"}}}",
	} {
		name := "big.yaml"
		if body[0] == '{' {
			name = "big.json"
		}
		cfg, err := Parse(name, []byte(body))
		if err == nil {
			err = s.Set("big", cfg)
		}
		var le *LoadError
		if !errors.As(err, &le) || le.Flag != "big" || le.Field != "variants.v" {
			t.Errorf("%s: err = %v, want a *LoadError for big's variants.v", body, err)
		}
		if d := s.IntDetail("big", EvalContext{}, 7); d.ErrorCode != CodeFlagNotFound {
			t.Errorf("%s: out-of-range flag served %+v", body, d)
		}
	}

	for _, v := range []any{uint64(1 << 63), float64(1 << 63), float64(-1 << 63), math.Ldexp(-1, 64), json.Number("9223372036854775808"), 1.5} {
		err := s.Set("big", Config{Flags: map[string]Flag{"big": {Type: TypeInt, Variants: map[string]any{"v": v}, Default: "v"}}})
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("variant %v (%T) accepted: %v", v, v, err)
		}
	}
	for _, tc := range []struct {
		v    any
		want int64
	}{{json.Number("9223372036854775807"), math.MaxInt64}, {uint64(math.MaxInt64), math.MaxInt64}, {int32(-5), -5}, {float64(-1 << 62), -1 << 62}} {
		err := s.Set("ok", Config{Flags: map[string]Flag{"ok": {Type: TypeInt, Variants: map[string]any{"v": tc.v}, Default: "v"}}})
		if err != nil {
			t.Errorf("variant %v (%T) refused: %v", tc.v, tc.v, err)
			continue
		}
		if got := s.Int("ok", EvalContext{}, 0); got != tc.want {
			t.Errorf("variant %v (%T) served as %d, want %d", tc.v, tc.v, got, tc.want)
		}
	}
}

// TestLongAttributesNeverMatch: a string attribute (or targeting key) of
// more than MaxAttributeLen bytes, or a list of more than
// MaxAttributeItems, counts as absent for every operator, segment and
// split; one at the limit is read as usual. Without the bound, every
// string operator ran over an attribute of any length (a 20x[a-z]{50}
// pattern took 1.9 s on 256 KiB).
func TestLongAttributesNeverMatch(t *testing.T) {
	conds := map[string]Condition{
		"matches":     {Attr: "a", Op: OpMatches, Value: `x$`},
		"contains":    {Attr: "a", Op: OpContains, Value: "x"},
		"starts_with": {Attr: "a", Op: OpStartsWith, Value: "a"},
		"ends_with":   {Attr: "a", Op: OpEndsWith, Value: "x"},
		"not_equals":  {Attr: "a", Op: OpNotEquals, Value: "b"},
		"not_in":      {Attr: "a", Op: OpNotIn, Values: []any{"b"}},
		"exists":      {Attr: "a", Op: OpExists},
		"gt":          {Attr: "n", Op: OpGT, Value: 0},
		"key":         {Attr: TargetingKeyAttr, Op: OpEndsWith, Value: "x"},
		"list":        {Attr: "groups", Op: OpContains, Value: "x"},
		"segment":     {Segment: "listed"},
	}
	cfg := Config{Segments: map[string]Segment{}, Flags: map[string]Flag{
		"split": {Variants: onOff, Default: "off", Serve: Serve{Rollout: []Weight{{"on", 1}}}},
	}}
	for name, c := range conds {
		cfg.Flags[name] = Flag{Variants: onOff, Default: "off", Rules: []Rule{{If: &c, Serve: Serve{Variant: "on"}}}}
	}
	at := strings.Repeat("a", MaxAttributeLen-1) + "x"
	over := strings.Repeat("a", MaxAttributeLen) + "x"
	cfg.Segments["listed"] = Segment{Keys: []string{at}}
	s, _ := newStore(t, cfg)
	list := func(n int) []string {
		l := make([]string, n)
		l[n-1] = "x"
		return l
	}
	digits := strings.Repeat("0", MaxAttributeLen-1) + "1"
	for _, tc := range []struct {
		name string
		ec   EvalContext
		want bool
	}{
		{"at the limit", EvalContext{TargetingKey: at, Attributes: map[string]any{"a": at, "n": digits, "groups": list(MaxAttributeItems)}}, true},
		{"over the limit", EvalContext{TargetingKey: over, Attributes: map[string]any{"a": over, "n": "0" + digits, "groups": list(MaxAttributeItems + 1)}}, false},
		{"json.Number over the limit", EvalContext{Attributes: map[string]any{"n": json.Number("0" + digits)}}, false},
		{"key in attributes over the limit", EvalContext{Attributes: map[string]any{TargetingKeyAttr: over}}, false},
	} {
		for name := range cfg.Flags {
			if tc.name != "at the limit" && tc.name != "over the limit" && name != "gt" && name != "key" && name != "split" {
				continue
			}
			d := s.BoolDetail(name, tc.ec, false)
			if d.Value != tc.want {
				t.Errorf("%s: %s served %v (%s), want %v", tc.name, name, d.Value, d.Reason, tc.want)
			}
		}
	}
	// not(...) of an over-long attribute is true, as for an absent one.
	if err := s.Set("not", Config{Flags: map[string]Flag{"not": {Variants: onOff, Default: "off",
		Rules: []Rule{{If: &Condition{Not: &Condition{Attr: "a", Op: OpContains, Value: "x"}}, Serve: Serve{Variant: "on"}}}}}}); err != nil {
		t.Fatal(err)
	}
	if !s.Bool("not", EvalContext{Attributes: map[string]any{"a": over}}, false) {
		t.Error("not(contains) of an over-long attribute did not match")
	}
}

// TestOperandsThatCouldNeverMatch: a string operand or segment key longer
// than MaxAttributeLen is refused at load, naming where it is.
func TestOperandsThatCouldNeverMatch(t *testing.T) {
	long := strings.Repeat("k", MaxAttributeLen+1)
	s, _ := newStore(t, Config{})
	for field, cfg := range map[string]Config{
		"rules[0].if.value": {Flags: map[string]Flag{"f": {Variants: onOff, Default: "off",
			Rules: []Rule{{If: &Condition{Attr: "a", Op: OpEquals, Value: long}, Serve: Serve{Variant: "on"}}}}}},
		"rules[0].if.values[1]": {Flags: map[string]Flag{"f": {Variants: onOff, Default: "off",
			Rules: []Rule{{If: &Condition{Attr: "a", Op: OpIn, Values: []any{"x", long}}, Serve: Serve{Variant: "on"}}}}}},
		"excluded[0]": {Segments: map[string]Segment{"g": {Excluded: []string{long}}}},
	} {
		err := s.Set("test", cfg)
		var le *LoadError
		if !errors.As(err, &le) || le.Field != field || !strings.Contains(err.Error(), "could never match") {
			t.Errorf("%s: err = %v", field, err)
		}
	}
}

// TestRegexpProgramBounded: an expression whose program exceeds
// MaxRegexpProgram is refused at load with its size and the way out; one
// at the limit loads. The 20x[a-z]{50} compiles to about 1,000.
func TestRegexpProgramBounded(t *testing.T) {
	s, _ := newStore(t, Config{})
	rule := func(expr string) Config {
		return Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off",
			Rules: []Rule{{If: &Condition{Attr: "ua", Op: OpMatches, Value: expr}, Serve: Serve{Variant: "on"}}}}}}
	}
	err := s.Set("test", rule(strings.Repeat("[a-z]{50}", 20)))
	var le *LoadError
	if !errors.As(err, &le) || le.Field != "rules[0].if.value" || !strings.Contains(err.Error(), "more than MaxRegexpProgram") {
		t.Fatalf("err = %v, want the program size refused", err)
	}
	if err := s.Set("test", rule(worstRegexp)); err != nil {
		t.Fatalf("an expression at the limit: %v", err)
	}
	if !s.Bool("f", EvalContext{Attributes: map[string]any{"ua": strings.Repeat("a", MaxAttributeLen)}}, false) {
		t.Error("the expression at the limit did not match")
	}
}

// worstRegexp is the slowest expression found within MaxRegexpProgram:
// every position of an input of a's keeps all of its threads alive, and
// the $ makes the search run to the end. BenchmarkEvalMatches times it.
var worstRegexp = "[a-z]{" + itoa(MaxRegexpProgram-4) + "}$"

// allocated returns the bytes fn allocated on the heap.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestFileSizeBounded: a file over MaxFileSize is refused before it is
// read, and a dense file within it is refused before the YAML parser
// builds its tree, so what a hostile file costs is bounded; a typical file
// close to the limit loads. 6 MiB of YAML used to allocate 561 MiB before
// being refused.
func TestFileSizeBounded(t *testing.T) {
	dir := t.TempDir()
	huge := filepath.Join(dir, "huge.yaml")
	writeFile(t, huge, "flags: ["+strings.Repeat("a,", 3<<20)+"a]\n")
	dense := filepath.Join(dir, "dense.yaml")
	writeFile(t, dense, "flags: ["+strings.Repeat("a,", MaxFileSize/2-8)+"a]\n")
	denseJSON := filepath.Join(dir, "dense.json")
	writeFile(t, denseJSON, "{\"flags\": ["+strings.Repeat("1,", MaxFileSize/2-16)+"1]}")
	for _, tc := range []struct {
		path, msg string
		max       uint64
	}{
		{huge, "more than MaxFileSize", 1 << 20},
		{dense, "more than a file may hold", 3 << 20},
		{denseJSON, "more than a file may hold", 3 << 20},
	} {
		var err error
		n := allocated(func() { _, err = LoadFiles(tc.path) })
		var le *LoadError
		if !errors.As(err, &le) || le.File != tc.path || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: err = %v, want a *LoadError saying %q", filepath.Base(tc.path), err, tc.msg)
		}
		if n > tc.max {
			t.Errorf("%s: refusing it allocated %d MiB, want at most %d MiB", filepath.Base(tc.path), n>>20, tc.max>>20)
		}
	}
	s, _ := newStore(t, Config{})
	if _, err := NewFileSource(s, FileOptions{Paths: []string{huge}}); err == nil || !strings.Contains(err.Error(), "more than MaxFileSize") {
		t.Errorf("a FileSource loaded a file over MaxFileSize: %v", err)
	}

	// The densest files the count lets through cost at most this to parse
	// (and are then refused for their shape).
	for name, body := range map[string]string{
		"explicit keys": strings.Repeat("? \n", maxStructural),
		"flow list":     "flags: [" + strings.Repeat("a,", maxStructural-2) + "a]\n",
	} {
		var err error
		n := allocated(func() { _, err = Parse("dense.yaml", []byte(body)) })
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
		t.Logf("%s: %d KiB parsed with %d MiB", name, len(body)>>10, n>>20)
		if n > 80<<20 {
			t.Errorf("%s: parsing %d KiB allocated %d MiB, want at most 80 MiB", name, len(body)>>10, n>>20)
		}
	}

	// A typical file of 2,500 flags (900 KB) still loads.
	typical := filepath.Join(dir, "typical.yaml")
	writeFile(t, typical, string(flagsYAML(2500)))
	cfg, err := LoadFiles(typical)
	if err != nil || len(cfg.Flags) != 2500 {
		t.Fatalf("typical file: %d flags, %v", len(cfg.Flags), err)
	}
}
