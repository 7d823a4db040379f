package flags

import (
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
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
