package flags

import (
	"strconv"
	"testing"
	"time"
)

func benchStore(b *testing.B, cfg Config) *Store {
	b.Helper()
	s, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Set("bench", cfg); err != nil {
		b.Fatal(err)
	}
	return s
}

var onOff = map[string]any{"on": true, "off": false}

func benchKeys() []EvalContext {
	ecs := make([]EvalContext, 1024)
	for i := range ecs {
		ecs[i] = EvalContext{TargetingKey: "user-" + strconv.Itoa(i), Attributes: map[string]any{
			"country": []string{"FR", "DE", "US", "JP"}[i%4], "plan": []string{"free", "pro"}[i%2],
			"version": "2.3." + strconv.Itoa(i%10), "age": i % 90,
		}}
	}
	return ecs
}

func twoConds(country, plan string) *Condition {
	return &Condition{All: []Condition{
		{Attr: "country", Op: OpIn, Values: []any{country, "XX"}},
		{Attr: "plan", Op: OpEquals, Value: plan},
	}}
}

func runEval(b *testing.B, s *Store, key string) {
	ecs := benchKeys()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		if s.Bool(key, ecs[i&1023], false) {
			n++
		}
	}
	sinkInt = n
}

var sinkInt int

func BenchmarkEvalStatic(b *testing.B) {
	s := benchStore(b, Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off", Serve: Serve{Variant: "on"}}}})
	runEval(b, s, "f")
}

func BenchmarkEvalSplit(b *testing.B) {
	s := benchStore(b, Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off",
		Serve: Serve{Rollout: []Weight{{"on", 50}, {"off", 50}}}}}})
	runEval(b, s, "f")
}

func BenchmarkEvalRule(b *testing.B) {
	s := benchStore(b, Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off",
		Rules: []Rule{{If: twoConds("FR", "pro"), Serve: Serve{Variant: "on"}}}}}})
	ec := EvalContext{TargetingKey: "u", Attributes: map[string]any{"country": "FR", "plan": "pro"}}
	b.ReportAllocs()
	for b.Loop() {
		if !s.Bool("f", ec, false) {
			b.Fatal("rule did not match")
		}
	}
}

func BenchmarkEvalTenRules(b *testing.B) {
	var rules []Rule
	for i := range 9 {
		rules = append(rules, Rule{If: twoConds("C"+strconv.Itoa(i), "plan"+strconv.Itoa(i)), Serve: Serve{Variant: "off"}})
	}
	rules = append(rules, Rule{If: twoConds("FR", "pro"), Serve: Serve{Variant: "on"}})
	s := benchStore(b, Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off", Rules: rules}}})
	ec := EvalContext{TargetingKey: "u", Attributes: map[string]any{"country": "FR", "plan": "pro"}}
	b.ReportAllocs()
	for b.Loop() {
		if !s.Bool("f", ec, false) {
			b.Fatal("tenth rule did not match")
		}
	}
}

func BenchmarkEvalProgressive(b *testing.B) {
	now := time.Now()
	s := benchStore(b, Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off",
		Serve: Serve{Progressive: &Progressive{Variant: "on",
			From: &Step{At: now.Add(-time.Hour), Percent: 5}, To: &Step{At: now.Add(time.Hour), Percent: 100}}}}}})
	runEval(b, s, "f")
}

func BenchmarkEvalParallel(b *testing.B) {
	s := benchStore(b, Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off",
		Rules: []Rule{{If: twoConds("FR", "pro"), Serve: Serve{Rollout: []Weight{{"on", 50}, {"off", 50}}}}},
		Serve: Serve{Rollout: []Weight{{"on", 10}, {"off", 90}}}}}})
	ecs := benchKeys()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i, n := 0, 0
		for pb.Next() {
			if s.Bool("f", ecs[i&1023], false) {
				n++
			}
			i++
		}
		_ = n
	})
}
