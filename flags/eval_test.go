package flags

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// newStore returns a Store with a fixed, settable clock and cfg loaded.
func newStore(t *testing.T, cfg Config) (*Store, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s, err := New(Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Set("test", cfg); err != nil {
		t.Fatal(err)
	}
	return s, clk
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

func TestOperators(t *testing.T) {
	at := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		cond  Condition
		attrs map[string]any
		want  bool
	}{
		{"equals string", Condition{Attr: "plan", Op: OpEquals, Value: "pro"}, map[string]any{"plan": "pro"}, true},
		{"equals string differs", Condition{Attr: "plan", Op: OpEquals, Value: "pro"}, map[string]any{"plan": "free"}, false},
		{"equals missing", Condition{Attr: "plan", Op: OpEquals, Value: "pro"}, nil, false},
		{"equals number int attr", Condition{Attr: "n", Op: OpEquals, Value: 3}, map[string]any{"n": int64(3)}, true},
		{"equals number json.Number", Condition{Attr: "n", Op: OpEquals, Value: 3.5}, map[string]any{"n": json.Number("3.5")}, true},
		{"equals bool", Condition{Attr: "beta", Op: OpEquals, Value: true}, map[string]any{"beta": true}, true},
		{"equals bool vs string", Condition{Attr: "beta", Op: OpEquals, Value: true}, map[string]any{"beta": "true"}, false},
		{"equals targeting key", Condition{Attr: "targetingKey", Op: OpEquals, Value: "user-1"}, nil, true},
		{"not_equals", Condition{Attr: "plan", Op: OpNotEquals, Value: "pro"}, map[string]any{"plan": "free"}, true},
		{"not_equals same", Condition{Attr: "plan", Op: OpNotEquals, Value: "pro"}, map[string]any{"plan": "pro"}, false},
		{"not_equals missing", Condition{Attr: "plan", Op: OpNotEquals, Value: "pro"}, nil, false},
		{"in strings", Condition{Attr: "c", Op: OpIn, Values: []any{"FR", "DE"}}, map[string]any{"c": "DE"}, true},
		{"in strings no", Condition{Attr: "c", Op: OpIn, Values: []any{"FR", "DE"}}, map[string]any{"c": "US"}, false},
		{"in numbers", Condition{Attr: "n", Op: OpIn, Values: []any{1, 2.5}}, map[string]any{"n": 2.5}, true},
		{"in numbers int", Condition{Attr: "n", Op: OpIn, Values: []any{1, 2}}, map[string]any{"n": uint8(2)}, true},
		{"in numbers numeric string", Condition{Attr: "n", Op: OpIn, Values: []any{"x", 2}}, map[string]any{"n": "2"}, true},
		{"in missing", Condition{Attr: "c", Op: OpIn, Values: []any{"FR"}}, nil, false},
		{"not_in", Condition{Attr: "c", Op: OpNotIn, Values: []any{"FR", "DE"}}, map[string]any{"c": "US"}, true},
		{"not_in member", Condition{Attr: "c", Op: OpNotIn, Values: []any{"FR", "DE"}}, map[string]any{"c": "FR"}, false},
		{"not_in missing", Condition{Attr: "c", Op: OpNotIn, Values: []any{"FR"}}, nil, false},
		{"contains string", Condition{Attr: "email", Op: OpContains, Value: "@corp"}, map[string]any{"email": "a@corp.com"}, true},
		{"contains string no", Condition{Attr: "email", Op: OpContains, Value: "@corp"}, map[string]any{"email": "a@x.com"}, false},
		{"contains []string", Condition{Attr: "groups", Op: OpContains, Value: "beta"}, map[string]any{"groups": []string{"a", "beta"}}, true},
		{"contains []any", Condition{Attr: "groups", Op: OpContains, Value: "beta"}, map[string]any{"groups": []any{"a", 1}}, false},
		{"contains targeting key", Condition{Attr: "targetingKey", Op: OpContains, Value: "-1"}, nil, true},
		{"starts_with", Condition{Attr: "path", Op: OpStartsWith, Value: "/api/"}, map[string]any{"path": "/api/v1"}, true},
		{"starts_with no", Condition{Attr: "path", Op: OpStartsWith, Value: "/api/"}, map[string]any{"path": "/web"}, false},
		{"ends_with", Condition{Attr: "email", Op: OpEndsWith, Value: ".fr"}, map[string]any{"email": "a@b.fr"}, true},
		{"ends_with non-string", Condition{Attr: "email", Op: OpEndsWith, Value: ".fr"}, map[string]any{"email": 3}, false},
		{"matches", Condition{Attr: "ua", Op: OpMatches, Value: `^Mozilla/\d+`}, map[string]any{"ua": "Mozilla/5.0"}, true},
		{"matches no", Condition{Attr: "ua", Op: OpMatches, Value: `^Mozilla/\d+`}, map[string]any{"ua": "curl/8"}, false},
		{"lt", Condition{Attr: "age", Op: OpLT, Value: 18}, map[string]any{"age": 17}, true},
		{"lt equal", Condition{Attr: "age", Op: OpLT, Value: 18}, map[string]any{"age": 18}, false},
		{"lte", Condition{Attr: "age", Op: OpLTE, Value: 18}, map[string]any{"age": 18.0}, true},
		{"gt", Condition{Attr: "age", Op: OpGT, Value: 18}, map[string]any{"age": int32(19)}, true},
		{"gt no", Condition{Attr: "age", Op: OpGT, Value: 18}, map[string]any{"age": 18}, false},
		{"gte", Condition{Attr: "age", Op: OpGTE, Value: 18}, map[string]any{"age": "18"}, true},
		{"gte not a number", Condition{Attr: "age", Op: OpGTE, Value: 18}, map[string]any{"age": "old"}, false},
		{"semver_eq", Condition{Attr: "v", Op: OpSemverEq, Value: "1.2.3"}, map[string]any{"v": "v1.2.3"}, true},
		{"semver_eq build ignored", Condition{Attr: "v", Op: OpSemverEq, Value: "1.2.3"}, map[string]any{"v": "1.2.3+abc"}, true},
		{"semver_lt", Condition{Attr: "v", Op: OpSemverLT, Value: "1.10.0"}, map[string]any{"v": "1.9.9"}, true},
		{"semver_lt prerelease", Condition{Attr: "v", Op: OpSemverLT, Value: "2.0.0"}, map[string]any{"v": "2.0.0-rc.1"}, true},
		{"semver_lt prerelease numeric", Condition{Attr: "v", Op: OpSemverLT, Value: "2.0.0-rc.10"}, map[string]any{"v": "2.0.0-rc.9"}, true},
		{"semver_lte", Condition{Attr: "v", Op: OpSemverLTE, Value: "2.0.0"}, map[string]any{"v": "2.0"}, true},
		{"semver_gt", Condition{Attr: "v", Op: OpSemverGT, Value: "2.0.0-alpha"}, map[string]any{"v": "2.0.0-beta"}, true},
		{"semver_gt no", Condition{Attr: "v", Op: OpSemverGT, Value: "2.0.0"}, map[string]any{"v": "1.99.99"}, false},
		{"semver_gte", Condition{Attr: "v", Op: OpSemverGTE, Value: "2.0.0"}, map[string]any{"v": "2.0.0"}, true},
		{"semver invalid attr", Condition{Attr: "v", Op: OpSemverGTE, Value: "2.0.0"}, map[string]any{"v": "two"}, false},
		{"before attr", Condition{Attr: "signup", Op: OpBefore, Value: at}, map[string]any{"signup": at.Add(-time.Second)}, true},
		{"before attr equal", Condition{Attr: "signup", Op: OpBefore, Value: at}, map[string]any{"signup": at}, false},
		{"after attr string", Condition{Attr: "signup", Op: OpAfter, Value: "2026-06-01T00:00:00Z"}, map[string]any{"signup": "2026-06-01T00:00:00Z"}, true},
		{"after attr unix", Condition{Attr: "signup", Op: OpAfter, Value: at}, map[string]any{"signup": at.Unix() + 1}, true},
		{"before now", Condition{Op: OpBefore, Value: at}, nil, true}, // the clock is at 2026-01-01
		{"after now", Condition{Op: OpAfter, Value: at}, nil, false},
		{"exists", Condition{Attr: "plan", Op: OpExists}, map[string]any{"plan": "x"}, true},
		{"exists nil", Condition{Attr: "plan", Op: OpExists}, map[string]any{"plan": nil}, false},
		{"all", Condition{All: []Condition{{Attr: "a", Op: OpEquals, Value: "1"}, {Attr: "b", Op: OpEquals, Value: "2"}}}, map[string]any{"a": "1", "b": "2"}, true},
		{"all one fails", Condition{All: []Condition{{Attr: "a", Op: OpEquals, Value: "1"}, {Attr: "b", Op: OpEquals, Value: "2"}}}, map[string]any{"a": "1", "b": "3"}, false},
		{"all empty", Condition{All: []Condition{}}, nil, true},
		{"any", Condition{Any: []Condition{{Attr: "a", Op: OpEquals, Value: "1"}, {Attr: "b", Op: OpEquals, Value: "2"}}}, map[string]any{"b": "2"}, true},
		{"any none", Condition{Any: []Condition{{Attr: "a", Op: OpEquals, Value: "1"}}}, nil, false},
		{"not", Condition{Not: &Condition{Attr: "plan", Op: OpExists}}, nil, true},
		{"not negates", Condition{Not: &Condition{Attr: "plan", Op: OpEquals, Value: "pro"}}, map[string]any{"plan": "pro"}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.cond
			s, _ := newStore(t, Config{Flags: map[string]Flag{"f": {
				Variants: onOff, Default: "off",
				Rules: []Rule{{If: &c, Serve: Serve{Variant: "on"}}},
			}}})
			d := s.BoolDetail("f", EvalContext{TargetingKey: "user-1", Attributes: tc.attrs}, false)
			if d.Value != tc.want {
				t.Fatalf("got %v (%s), want %v", d.Value, d.Reason, tc.want)
			}
			wantReason := ReasonDefault
			if tc.want {
				wantReason = ReasonTargeted
			}
			if d.Reason != wantReason {
				t.Errorf("reason %s, want %s", d.Reason, wantReason)
			}
		})
	}
}

func TestTypesAndErrors(t *testing.T) {
	s, _ := newStore(t, Config{Flags: map[string]Flag{
		"b":   {Variants: onOff, Default: "on", Metadata: map[string]any{"owner": "team-a"}},
		"s":   {Type: TypeString, Variants: map[string]any{"blue": "#00f", "red": "#f00"}, Default: "red"},
		"i":   {Type: TypeInt, Variants: map[string]any{"small": 10, "big": int64(1 << 60)}, Default: "big"},
		"fl":  {Type: TypeFloat, Variants: map[string]any{"x": 0.25}, Default: "x"},
		"obj": {Type: TypeObject, Variants: map[string]any{"v1": map[string]any{"k": []any{1.0, "two"}}}, Default: "v1"},
	}})
	ec := EvalContext{TargetingKey: "u"}
	if d := s.BoolDetail("b", ec, false); !d.Value || d.Variant != "on" || d.Reason != ReasonStatic || d.Metadata["owner"] != "team-a" {
		t.Errorf("bool: %+v", d)
	}
	if v := s.String("s", ec, ""); v != "#f00" {
		t.Errorf("string: %q", v)
	}
	if v := s.Int("i", ec, 0); v != 1<<60 {
		t.Errorf("int: %d", v)
	}
	if v := s.Float("i", ec, 0); v != float64(1<<60) {
		t.Errorf("float of int flag: %v", v)
	}
	if v := s.Float("fl", ec, 0); v != 0.25 {
		t.Errorf("float: %v", v)
	}
	obj, _ := s.Object("obj", ec, nil).(map[string]any)
	if obj == nil || obj["k"].([]any)[1] != "two" {
		t.Errorf("object: %#v", obj)
	}
	d := s.StringDetail("b", ec, "dflt")
	if d.Value != "dflt" || d.Reason != ReasonError || d.ErrorCode != CodeTypeMismatch || !errors.Is(d.Err, ErrTypeMismatch) {
		t.Errorf("type mismatch: %+v", d)
	}
	d2 := s.BoolDetail("nope", ec, true)
	if !d2.Value || d2.Reason != ReasonError || d2.ErrorCode != CodeFlagNotFound || !errors.Is(d2.Err, ErrFlagNotFound) {
		t.Errorf("not found: %+v", d2)
	}
}

func TestDisabledAndOverrides(t *testing.T) {
	s, _ := newStore(t, Config{Flags: map[string]Flag{
		"kill": {Variants: map[string]any{"on": true, "off": false, "dark": false}, Default: "on", Disabled: true, OffVariant: "dark"},
		"f":    {Variants: onOff, Default: "off", Serve: Serve{Variant: "on"}},
	}})
	ec := EvalContext{TargetingKey: "u"}
	if d := s.BoolDetail("kill", ec, true); d.Value || d.Variant != "dark" || d.Reason != ReasonDisabled {
		t.Errorf("disabled flag: %+v", d)
	}
	if err := s.SetDisabled("f", true); err != nil {
		t.Fatal(err)
	}
	if d := s.BoolDetail("f", ec, true); d.Value || d.Variant != "off" || d.Reason != ReasonDisabled {
		t.Errorf("after SetDisabled: %+v", d)
	}
	// The override survives a reload of the source.
	if err := s.Set("test", Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off", Serve: Serve{Variant: "on"}}}}); err != nil {
		t.Fatal(err)
	}
	if d := s.BoolDetail("f", ec, true); d.Reason != ReasonDisabled {
		t.Errorf("override lost on reload: %+v", d)
	}
	if err := s.ClearOverride("f"); err != nil {
		t.Fatal(err)
	}
	if d := s.BoolDetail("f", ec, false); !d.Value || d.Reason != ReasonStatic {
		t.Errorf("after ClearOverride: %+v", d)
	}
	if err := s.SetPercent("f", "on", 100); err != nil {
		t.Fatal(err)
	}
	if d := s.BoolDetail("f", ec, false); !d.Value || d.Reason != ReasonSplit {
		t.Errorf("at 100%%: %+v", d)
	}
	if err := s.SetPercent("f", "on", 0); err != nil {
		t.Fatal(err)
	}
	if d := s.BoolDetail("f", ec, true); d.Value || d.Reason != ReasonSplit {
		t.Errorf("at 0%%: %+v", d)
	}
	for _, bad := range []struct {
		key, variant string
		pct          float64
		want         error
	}{
		{"f", "on", 101, ErrInvalid}, {"f", "on", -1, ErrInvalid}, {"f", "nope", 5, ErrInvalid},
		{"f", "off", 5, ErrInvalid}, {"missing", "on", 5, ErrFlagNotFound},
	} {
		if err := s.SetPercent(bad.key, bad.variant, bad.pct); !errors.Is(err, bad.want) {
			t.Errorf("SetPercent(%q, %q, %v) = %v, want %v", bad.key, bad.variant, bad.pct, err, bad.want)
		}
	}
	if d := s.BoolDetail("f", ec, true); d.Value || d.Reason != ReasonSplit {
		t.Errorf("a refused override changed the flag: %+v", d)
	}
}

func TestSegments(t *testing.T) {
	s, _ := newStore(t, Config{
		Segments: map[string]Segment{
			"staff": {Keys: []string{"alice"}, Excluded: []string{"mallory"},
				If: &Condition{Attr: "email", Op: OpEndsWith, Value: "@corp.com"}},
			"vip": {Keys: []string{"bob"}},
		},
		Flags: map[string]Flag{"f": {Variants: onOff, Default: "off", Rules: []Rule{
			{Name: "staff", If: &Condition{Segment: "staff"}, Serve: Serve{Variant: "on"}},
			{Name: "vip", If: &Condition{Any: []Condition{{Segment: "vip"}}}, Serve: Serve{Variant: "on"}},
		}}},
	})
	for _, tc := range []struct {
		key   string
		email string
		want  bool
	}{
		{"alice", "alice@gmail.com", true},     // listed key
		{"carol", "carol@corp.com", true},      // condition
		{"mallory", "mallory@corp.com", false}, // excluded wins over the condition
		{"dave", "dave@gmail.com", false},
		{"bob", "", true}, // second segment
	} {
		ec := EvalContext{TargetingKey: tc.key, Attributes: map[string]any{"email": tc.email}}
		if got := s.Bool("f", ec, false); got != tc.want {
			t.Errorf("%s: got %v, want %v", tc.key, got, tc.want)
		}
	}
}

// TestSegmentKeysWinOverExcluded: a targeting key both listed and
// excluded is in the segment, as Segment.Keys documents; an excluded key
// is out even when the condition admits it.
func TestSegmentKeysWinOverExcluded(t *testing.T) {
	s, _ := newStore(t, Config{
		Segments: map[string]Segment{"beta": {Keys: []string{"alice"}, Excluded: []string{"alice", "bob"},
			If: &Condition{Attr: "plan", Op: OpEquals, Value: "pro"}}},
		Flags: map[string]Flag{"f": {Variants: onOff, Default: "off",
			Rules: []Rule{{If: &Condition{Segment: "beta"}, Serve: Serve{Variant: "on"}}}}},
	})
	pro := map[string]any{"plan": "pro"}
	for key, want := range map[string]bool{"alice": true, "bob": false, "carol": true} {
		if got := s.Bool("f", EvalContext{TargetingKey: key, Attributes: pro}, false); got != want {
			t.Errorf("%s: in segment = %v, want %v", key, got, want)
		}
	}
}

// TestOverrideThatNoLongerAppliesIsDropped: a percentage set at run time
// on a variant that a reload removes must not block the reload: the new
// definition loads and serves, and the override is dropped with a warning
// (and does not come back when the variant does).
func TestOverrideThatNoLongerAppliesIsDropped(t *testing.T) {
	var logs syncBuf
	s, err := New(Options{Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: time.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	abc := Flag{Type: TypeString, Variants: map[string]any{"a": "A", "b": "B", "c": "C"}, Default: "a"}
	if err := s.Set("files", Config{Flags: map[string]Flag{"f": abc}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetPercent("f", "c", 100); err != nil {
		t.Fatal(err)
	}
	ec := EvalContext{TargetingKey: "u"}
	if v := s.String("f", ec, ""); v != "C" {
		t.Fatalf("override not in force: %q", v)
	}
	ab := Flag{Type: TypeString, Variants: map[string]any{"a": "A", "b": "B"}, Default: "a", Serve: Serve{Variant: "b"}}
	if err := s.Set("files", Config{Flags: map[string]Flag{"f": ab}}); err != nil {
		t.Fatalf("a reload without the override's variant was refused: %v", err)
	}
	if d := s.StringDetail("f", ec, ""); d.Value != "B" || d.Reason != ReasonStatic {
		t.Errorf("after the reload: %+v, want the new definition's b (STATIC)", d)
	}
	if st := s.Status("f"); st.Overridden {
		t.Error("the override that no longer applies is still reported")
	}
	if l := logs.String(); !strings.Contains(l, "level=WARN") || !strings.Contains(l, "run-time override dropped") || !strings.Contains(l, "flag=f") {
		t.Errorf("no warning naming the flag in the log:\n%s", l)
	}
	if err := s.Set("files", Config{Flags: map[string]Flag{"f": abc}}); err != nil {
		t.Fatal(err)
	}
	if v := s.String("f", ec, ""); v != "A" {
		t.Errorf("the dropped override came back with its variant: %q", v)
	}
}

func TestPrerequisites(t *testing.T) {
	s, _ := newStore(t, Config{Flags: map[string]Flag{
		"api": {Type: TypeString, Variants: map[string]any{"v1": "v1", "v2": "v2"}, Default: "v1",
			Rules: []Rule{{If: &Condition{Attr: "beta", Op: OpEquals, Value: true}, Serve: Serve{Variant: "v2"}}}},
		"ui": {Variants: onOff, Default: "off", Serve: Serve{Variant: "on"},
			Prerequisites: []Prerequisite{{Flag: "api", Variants: []string{"v2"}}}},
	}})
	if d := s.BoolDetail("ui", EvalContext{TargetingKey: "u", Attributes: map[string]any{"beta": true}}, false); !d.Value || d.Reason != ReasonDefault {
		// The fallthrough of a flag with prerequisites reports DEFAULT.
		t.Errorf("prerequisite met: %+v", d)
	}
	if d := s.BoolDetail("ui", EvalContext{TargetingKey: "u"}, true); d.Value || d.Reason != ReasonDefault {
		t.Errorf("prerequisite not met: %+v", d)
	}
	// Prerequisite evaluations count as usage of the prerequisite.
	if st := s.Status("api"); st.Evaluations != 2 {
		t.Errorf("prerequisite evaluations = %d, want 2", st.Evaluations)
	}
}

func TestPrerequisiteCycleRejected(t *testing.T) {
	s, _ := newStore(t, Config{Flags: map[string]Flag{"keep": {Variants: onOff, Default: "on"}}})
	pre := func(f string) []Prerequisite { return []Prerequisite{{Flag: f, Variants: []string{"on"}}} }
	for name, flags := range map[string]map[string]Flag{
		"self": {"a": {Variants: onOff, Default: "on", Prerequisites: pre("a")}},
		"three": {
			"a": {Variants: onOff, Default: "on", Prerequisites: pre("b")},
			"b": {Variants: onOff, Default: "on", Prerequisites: pre("c")},
			"c": {Variants: onOff, Default: "on", Prerequisites: pre("a")},
		},
	} {
		err := s.Set("test", Config{Flags: flags})
		if !errors.Is(err, ErrCycle) || !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err = %v, want a cycle", name, err)
		}
		if !s.Bool("keep", EvalContext{}, false) {
			t.Errorf("%s: last good configuration lost", name)
		}
	}
}

func TestCompileErrors(t *testing.T) {
	good := func() Flag { return Flag{Variants: onOff, Default: "off"} }
	tests := map[string]struct {
		mutate func(*Flag)
		field  string
	}{
		"no variants":      {func(f *Flag) { f.Variants = nil }, "variants"},
		"bad default":      {func(f *Flag) { f.Default = "maybe" }, "default"},
		"bad off":          {func(f *Flag) { f.OffVariant = "maybe" }, "offVariant"},
		"wrong value type": {func(f *Flag) { f.Type = TypeInt }, "variants.off"},
		"bad regex": {func(f *Flag) {
			f.Rules = []Rule{{If: &Condition{Attr: "a", Op: OpMatches, Value: "("}, Serve: Serve{Variant: "on"}}}
		}, "rules[0].if.value"},
		"bad op": {func(f *Flag) {
			f.Rules = []Rule{{If: &Condition{All: []Condition{{Attr: "a", Op: "equal", Value: "x"}}}, Serve: Serve{Variant: "on"}}}
		}, "rules[0].if.all[0].op"},
		"bad semver": {func(f *Flag) {
			f.Rules = []Rule{{If: &Condition{Attr: "a", Op: OpSemverGT, Value: "1.x"}, Serve: Serve{Variant: "on"}}}
		}, "rules[0].if.value"},
		"unknown segment": {func(f *Flag) {
			f.Rules = []Rule{{If: &Condition{Segment: "nope"}, Serve: Serve{Variant: "on"}}}
		}, "rules[0].if.segment"},
		"rule serves nothing": {func(f *Flag) { f.Rules = []Rule{{}} }, "rules[0].serve"},
		"zero weights": {func(f *Flag) {
			f.Serve = Serve{Rollout: []Weight{{"on", 0}, {"off", 0}}}
		}, "serve.rollout"},
		"steps out of order": {func(f *Flag) {
			t0 := time.Now()
			f.Serve = Serve{Progressive: &Progressive{Variant: "on", Steps: []Step{{t0, 5}, {t0, 10}}}}
		}, "serve.progressive.steps[1].at"},
		"percent over 100": {func(f *Flag) {
			t0 := time.Now()
			f.Serve = Serve{Progressive: &Progressive{Variant: "on", From: &Step{t0, 5}, To: &Step{t0.Add(time.Hour), 101}}}
		}, "serve.progressive.to.percent"},
		"unknown prerequisite": {func(f *Flag) {
			f.Prerequisites = []Prerequisite{{Flag: "nope", Variants: []string{"on"}}}
		}, "prerequisites[0].flag"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, _ := newStore(t, Config{})
			f := good()
			tc.mutate(&f)
			err := s.Set("code", Config{Flags: map[string]Flag{"my-flag": f}})
			var le *LoadError
			if !errors.As(err, &le) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a *LoadError", err)
			}
			if le.Flag != "my-flag" || le.Field != tc.field || le.File != "code" {
				t.Errorf("error names file %q flag %q field %q, want code, my-flag, %q (%v)", le.File, le.Flag, le.Field, tc.field, err)
			}
		})
	}
}

func TestSourcesAndLifecycle(t *testing.T) {
	s, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var evs []Event
	cancel := s.Subscribe(func(e Event) { evs = append(evs, e) })
	if err := s.Set("a", Config{Flags: map[string]Flag{"x": {Variants: onOff, Default: "on"}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("b", Config{Flags: map[string]Flag{"y": {Variants: onOff, Default: "on",
		Prerequisites: []Prerequisite{{Flag: "x", Variants: []string{"on"}}}}}}); err != nil {
		t.Fatal(err)
	}
	// Removing a source another source depends on is refused.
	if err := s.Remove("a"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Remove(a) = %v, want ErrInvalid", err)
	}
	if err := s.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if d := s.BoolDetail("y", EvalContext{}, false); d.ErrorCode != CodeFlagNotFound {
		t.Errorf("removed flag still served: %+v", d)
	}
	if s.Version() != 3 {
		t.Errorf("version %d, want 3", s.Version())
	}
	cancel()
	if len(evs) != 4 || evs[1].Changed[0] != "y" || evs[2].Kind != EventRejected || evs[2].Source != "a" || evs[3].Changed[0] != "y" {
		t.Errorf("events %+v", evs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := s.Set("a", Config{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Set after Close = %v", err)
	}
	if !s.Bool("x", EvalContext{}, false) {
		t.Error("evaluation after Close lost the configuration")
	}
}

func TestOverrideDroppedWithItsFlag(t *testing.T) {
	cfg := Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "on"}}}
	s, _ := newStore(t, cfg)
	if err := s.SetDisabled("f", true); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("test", Config{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Set("test", cfg); err != nil {
		t.Fatal(err)
	}
	if d := s.BoolDetail("f", EvalContext{}, false); !d.Value || d.Reason != ReasonStatic {
		t.Errorf("override outlived its flag: %+v", d)
	}
}
