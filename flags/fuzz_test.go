package flags

import (
	"errors"
	"os"
	"testing"
	"time"
)

// FuzzLoad feeds arbitrary bytes to the loader as YAML and as JSON, then
// installs and evaluates whatever parses. Nothing may panic, and every
// refusal must be a *LoadError wrapping ErrInvalid.
func FuzzLoad(f *testing.F) {
	for _, p := range []string{"testdata/flags.yaml", "testdata/flags.json"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data, p == "testdata/flags.json")
	}
	f.Add([]byte(flagFile("red")), false)
	f.Add([]byte(bomb()), false)
	f.Add([]byte(`{"flags":{"a":{"variants":{"x":1,"y":2.5},"default":"x","serve":{"rollout":[{"variant":"y","weight":4294967295},{"variant":"x","weight":4294967295}]}}}}`), true)
	f.Add([]byte("flags:\n  a:\n    variants: {on: true}\n    default: on\n    prerequisites: [{flag: a, variants: [on]}]\n"), false)
	f.Add([]byte("segments:\n  s: {keys: [a], if: {attr: v, op: semver_gt, value: 1.0.0-rc.1}}\nflags:\n  a:\n    variants: {on: true, off: false}\n    default: off\n    rules: [{if: {segment: s}, serve: on}]\n"), false)
	f.Add([]byte("flags:\n  a:\n    variants: {on: true, off: false}\n    default: off\noverrides:\n  a: {disabled: true, percent: {variant: on, percent: 5}}\n  b: {disabled: false}\n"), false)
	f.Fuzz(func(t *testing.T, data []byte, isJSON bool) {
		name := "fuzz.yaml"
		if isJSON {
			name = "fuzz.json"
		}
		cfg, err := Parse(name, data)
		if err != nil {
			var le *LoadError
			if !errors.As(err, &le) || !errors.Is(err, ErrInvalid) || le.File != name {
				t.Fatalf("parse error %v is not a *LoadError naming the file", err)
			}
			return
		}
		s, err := New(Options{Now: func() time.Time { return time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC) }})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Set("fuzz", cfg); err != nil {
			var le *LoadError
			if !errors.As(err, &le) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("compile error %v is not a *LoadError", err)
			}
			return
		}
		ecs := []EvalContext{{}, {TargetingKey: "user-1", Attributes: map[string]any{
			"country": "FR", "appVersion": "2.5.0", "plan": "pro", "email": "a@corp.example", "n": 3, "t": "2026-01-01T00:00:00Z",
		}}}
		for key := range cfg.Flags {
			for _, ec := range ecs {
				s.BoolDetail(key, ec, false)
				s.StringDetail(key, ec, "")
				s.IntDetail(key, ec, 0)
				s.FloatDetail(key, ec, 0)
				s.ObjectDetail(key, ec, nil)
			}
		}
		s.Flags()
		s.Stale(StaleOptions{})
		// A run-time change written into the document as a fleet would:
		// refused, or a document with the same flags and the override.
		on := true
		for key := range cfg.Flags {
			out, err := EditOverride(name, data, key, func(o *Override) error { o.Disabled = &on; return nil })
			if err != nil {
				break
			}
			edited, err := Parse(name, out)
			if err != nil || len(edited.Flags) != len(cfg.Flags) || edited.Overrides[key].Disabled == nil {
				t.Fatalf("EditOverride(%q) gave a different document (%v):\n%s", key, err, out)
			}
			break
		}
	})
}
