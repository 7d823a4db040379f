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
