package flags

import (
	"testing"
	"time"
)

// TestEvaluationDoesNotAllocate guards the 0 allocs/op of the benchmarks
// for every kind of evaluation, operator and error path that should be
// free. (Allocation counts are exact, unlike timings.)
func TestEvaluationDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s, _ := newStore(t, Config{
		Segments: map[string]Segment{"beta": {Keys: []string{"k1"}, If: &Condition{Attr: "email", Op: OpEndsWith, Value: "@corp"}}},
		Flags: map[string]Flag{
			"static": {Variants: onOff, Default: "on"},
			"split":  {Variants: onOff, Default: "off", Serve: Serve{Rollout: []Weight{{"on", 1}, {"off", 1}}}},
			"prog": {Variants: onOff, Default: "off", Serve: Serve{Progressive: &Progressive{Variant: "on",
				From: &Step{now.Add(-time.Hour), 0}, To: &Step{now.Add(time.Hour), 100}}}},
			"ops": {Variants: onOff, Default: "off", Rules: []Rule{{If: &Condition{All: []Condition{
				{Attr: "plan", Op: OpEquals, Value: "pro"},
				{Attr: "n", Op: OpGTE, Value: 3},
				{Attr: "c", Op: OpIn, Values: []any{"FR", "DE", "a", "b", "c", "d", "e", "f", "g", "h"}},
				{Attr: "v", Op: OpSemverGT, Value: "1.2.0"},
				{Attr: "ua", Op: OpMatches, Value: "^Mozilla"},
				{Attr: "t", Op: OpAfter, Value: now.Add(-time.Hour)},
				{Op: OpBefore, Value: now.Add(time.Hour)},
				{Attr: "groups", Op: OpContains, Value: "x"},
				{Attr: "targetingKey", Op: OpStartsWith, Value: "k"},
				{Not: &Condition{Attr: "missing", Op: OpExists}},
				{Segment: "beta"},
			}}, Serve: Serve{Variant: "on"}}}},
			"pre": {Variants: onOff, Default: "off", Serve: Serve{Variant: "on"},
				Prerequisites: []Prerequisite{{Flag: "static", Variants: []string{"on"}}}},
			"str": {Type: TypeString, Variants: map[string]any{"a": "x"}, Default: "a"},
		},
	})
	ec := EvalContext{TargetingKey: "k1", Attributes: map[string]any{
		"plan": "pro", "n": 4, "c": "FR", "v": "1.10.0", "ua": "Mozilla/5.0", "t": now, "groups": []string{"x"},
		"email": "a@corp",
	}}
	for _, key := range []string{"static", "split", "prog", "ops", "pre", "missing"} {
		want := key != "missing"
		if got := s.Bool(key, ec, false); got != want && key != "split" && key != "prog" {
			t.Fatalf("%s = %v, want %v", key, got, want)
		}
		if n := testing.AllocsPerRun(100, func() { s.Bool(key, ec, false) }); n != 0 {
			t.Errorf("Bool(%s): %v allocs", key, n)
		}
		if n := testing.AllocsPerRun(100, func() { s.BoolDetail(key, ec, false) }); n != 0 {
			t.Errorf("BoolDetail(%s): %v allocs", key, n)
		}
	}
	if n := testing.AllocsPerRun(100, func() { s.StringDetail("static", ec, "") }); n != 0 {
		t.Errorf("type mismatch: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() { s.String("str", ec, "") }); n != 0 {
		t.Errorf("String: %v allocs", n)
	}
}

// TestMatchesCompiledOnce: a matches condition uses the expression
// compiled at load. It compares the allocations of a matches rule with
// those of the same rule as starts_with, so that it holds under the race
// detector too (compiling an expression allocates dozens of times;
// whatever the detector adds, it adds to both).
func TestMatchesCompiledOnce(t *testing.T) {
	rule := func(op Op, value string) Flag {
		return Flag{Variants: onOff, Default: "off", Rules: []Rule{{If: &Condition{Attr: "ua", Op: op, Value: value}, Serve: Serve{Variant: "on"}}}}
	}
	s, _ := newStore(t, Config{Flags: map[string]Flag{
		"re":     rule(OpMatches, `^Mozilla/\d+\.\d+ \((iPhone|iPad)`),
		"prefix": rule(OpStartsWith, "Mozilla/"),
	}})
	ec := EvalContext{Attributes: map[string]any{"ua": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X)"}}
	if !s.Bool("re", ec, false) || !s.Bool("prefix", ec, false) {
		t.Fatal("rules did not match")
	}
	re := testing.AllocsPerRun(200, func() { s.Bool("re", ec, false) })
	prefix := testing.AllocsPerRun(200, func() { s.Bool("prefix", ec, false) })
	if re > prefix {
		t.Errorf("a matches evaluation allocates %v times, starts_with %v: the expression is compiled per evaluation", re, prefix)
	}
}
