package flags

import (
	"math"
	"strconv"
	"testing"
	"time"
)

const million = 1_000_000

var millionKeys = func() []string {
	keys := make([]string, million)
	for i := range keys {
		keys[i] = "user-" + strconv.Itoa(i)
	}
	return keys
}()

// TestSplitAccuracy: over 10^6 keys each variant's share is within 0.1
// percentage points of its weight. The keys are fixed, so the result is
// deterministic; at 10^6 keys the sampling noise of a 50% share is 0.05
// points (one standard deviation), so the bound is also what a fair hash
// gives.
func TestSplitAccuracy(t *testing.T) {
	s, _ := newStore(t, Config{Flags: map[string]Flag{"f": {Type: TypeString,
		Variants: map[string]any{"a": "a", "b": "b", "c": "c"}, Default: "a",
		Serve: Serve{Rollout: []Weight{{"a", 10}, {"b", 30}, {"c", 60}}}}}})
	counts := map[string]int{}
	for _, k := range millionKeys {
		d := s.StringDetail("f", EvalContext{TargetingKey: k}, "")
		if d.Reason != ReasonSplit {
			t.Fatalf("reason %s", d.Reason)
		}
		counts[d.Variant]++
	}
	for v, want := range map[string]float64{"a": 10, "b": 30, "c": 60} {
		got := float64(counts[v]) * 100 / million
		t.Logf("variant %s: %.3f%% (want %.0f%%)", v, got, want)
		if math.Abs(got-want) > 0.1 {
			t.Errorf("variant %s: %.3f%%, want %.0f%% within 0.1", v, got, want)
		}
	}
	if st := s.Status("f"); st.Evaluations != million || st.ByVariant["b"] != uint64(counts["b"]) {
		t.Errorf("usage counted %d evaluations, %d for b; want %d, %d", st.Evaluations, st.ByVariant["b"], million, counts["b"])
	}
}

// TestRampMonotone: raising a percentage only moves keys into the variant,
// through an override, a weight change and a progressive rollout over time;
// and a key keeps its variant when nothing changes (stickiness).
func TestRampMonotone(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ramps := map[string]func(s *Store, clk *fakeClock, pct float64){
		"override": func(s *Store, _ *fakeClock, pct float64) {
			if err := s.SetPercent("f", "on", pct); err != nil {
				t.Fatal(err)
			}
		},
		"weights": func(s *Store, _ *fakeClock, pct float64) {
			err := s.Set("test", Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off",
				Serve: Serve{Rollout: []Weight{{"on", uint32(pct * 10)}, {"off", uint32(1000 - pct*10)}}}}}})
			if err != nil {
				t.Fatal(err)
			}
		},
		"progressive": func(s *Store, clk *fakeClock, pct float64) {
			// The ramp goes from 0% to 100% over 100 hours.
			clk.t = t0.Add(time.Duration(pct * float64(time.Hour)))
		},
	}
	for name, ramp := range ramps {
		t.Run(name, func(t *testing.T) {
			s, clk := newStore(t, Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off",
				Serve: Serve{Progressive: &Progressive{Variant: "on",
					From: &Step{t0, 0}, To: &Step{t0.Add(100 * time.Hour), 100}}}}}})
			n := million
			if testing.Short() || raceEnabled {
				n = million / 10
			}
			in := make([]bool, n)
			for _, pct := range []float64{1, 5, 5, 20, 50, 99.5} {
				ramp(s, clk, pct)
				count := 0
				for i, k := range millionKeys[:n] {
					on := s.Bool("f", EvalContext{TargetingKey: k}, false)
					if in[i] && !on {
						t.Fatalf("at %v%%: %s moved out of the variant", pct, k)
					}
					in[i] = on
					if on {
						count++
					}
				}
				got := float64(count) * 100 / float64(n)
				if math.Abs(got-pct) > 0.1+4*100*math.Sqrt(pct/100*(1-pct/100)/float64(n)) {
					t.Errorf("at %v%%: %.3f%% in", pct, got)
				}
			}
		})
	}
}

// TestStickyAcrossStores: the same key gets the same variant from another
// Store with the same configuration, and flagd's published fractional
// vectors hold (same flag key as salt, targeting key, 50/50).
func TestStickyAcrossStores(t *testing.T) {
	cfg := Config{Flags: map[string]Flag{"fractional-flag-shorthand": {Type: TypeString,
		Variants: map[string]any{"heads": "heads", "tails": "tails"}, Default: "heads",
		Serve: Serve{Rollout: []Weight{{"heads", 50}, {"tails", 50}}}}}}
	a, _ := newStore(t, cfg)
	b, _ := newStore(t, cfg)
	for _, k := range millionKeys[:10000] {
		ec := EvalContext{TargetingKey: k}
		if x, y := a.String("fractional-flag-shorthand", ec, ""), b.String("fractional-flag-shorthand", ec, ""); x != y {
			t.Fatalf("%s: %s in one store, %s in the other", k, x, y)
		}
	}
	for key, want := range map[string]string{"jon@company.com": "heads", "jane@company.com": "tails"} {
		if got := a.String("fractional-flag-shorthand", EvalContext{TargetingKey: key}, ""); got != want {
			t.Errorf("flagd vector %s: got %s, want %s", key, got, want)
		}
	}
}

func TestBucketByAndSalt(t *testing.T) {
	flag := func(salt, by string) Flag {
		return Flag{Variants: onOff, Default: "off", Salt: salt, BucketBy: by,
			Serve: Serve{Rollout: []Weight{{"on", 50}, {"off", 50}}}}
	}
	s, _ := newStore(t, Config{Flags: map[string]Flag{
		"by-org": flag("", "org"), "salted": flag("x", ""), "same-as-salted": flag("x", ""),
	}})
	// Bucketing on org: every user of one org gets the same variant.
	first := s.Bool("by-org", EvalContext{TargetingKey: "u0", Attributes: map[string]any{"org": "acme"}}, false)
	for i := range 100 {
		ec := EvalContext{TargetingKey: "u" + strconv.Itoa(i), Attributes: map[string]any{"org": "acme"}}
		if s.Bool("by-org", ec, false) != first {
			t.Fatal("users of one org split across variants")
		}
	}
	// No bucketing value: the default variant, reason DEFAULT.
	if d := s.BoolDetail("by-org", EvalContext{TargetingKey: "u"}, true); d.Value || d.Reason != ReasonDefault {
		t.Errorf("missing bucketing attribute: %+v", d)
	}
	// Two flags with the same salt put every key in the same bucket.
	for _, k := range millionKeys[:1000] {
		ec := EvalContext{TargetingKey: k}
		if s.Bool("salted", ec, false) != s.Bool("same-as-salted", ec, false) {
			t.Fatalf("%s: same salt, different variants", k)
		}
	}
}

func TestProgressiveBoundaries(t *testing.T) {
	t1 := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	t2 := t1.Add(10 * time.Hour)
	t3 := t2.Add(10 * time.Hour)
	s, clk := newStore(t, Config{Flags: map[string]Flag{
		"linear": {Variants: onOff, Default: "off", Serve: Serve{Progressive: &Progressive{Variant: "on",
			From: &Step{t1, 10}, To: &Step{t2, 50}}}},
		"steps": {Variants: onOff, Default: "off", Serve: Serve{Progressive: &Progressive{Variant: "on",
			Steps: []Step{{t1, 1}, {t2, 10}, {t3, 100}}}}},
	}})
	linear := s.snap.Load().flags["linear"].serve.prog
	steps := s.snap.Load().flags["steps"].serve.prog
	ns := time.Nanosecond
	for _, tc := range []struct {
		at           time.Time
		linear, step float64 // percent
	}{
		{t1.Add(-ns), 0, 0},
		{t1, 10, 1},
		{t1.Add(5 * time.Hour), 30, 1},
		{t2.Add(-ns), 50, 1},
		{t2, 50, 10},
		{t3.Add(-ns), 50, 10},
		{t3, 50, 100},
		{t3.Add(1000 * time.Hour), 50, 100},
	} {
		got := func(p *cprog) float64 { return float64(p.shareAt(tc.at.UnixNano())) * 100 / percentTotal }
		if l := got(linear); math.Abs(l-tc.linear) > 0.001 {
			t.Errorf("linear at %s: %v%%, want %v%%", tc.at, l, tc.linear)
		}
		if st := got(steps); st != tc.step {
			t.Errorf("steps at %s: %v%%, want %v%%", tc.at, st, tc.step)
		}
		// Evaluations agree with the share: 0% serves nobody, 100% everybody.
		clk.t = tc.at
		on := 0
		for _, k := range millionKeys[:20000] {
			if s.Bool("steps", EvalContext{TargetingKey: k}, false) {
				on++
			}
		}
		if pct := float64(on) * 100 / 20000; math.Abs(pct-tc.step) > 0.1+4*100*math.Sqrt(tc.step/100*(1-tc.step/100)/20000) {
			t.Errorf("steps at %s: %.2f%% of keys on, want %v%%", tc.at, pct, tc.step)
		}
	}
	if d := s.BoolDetail("steps", EvalContext{TargetingKey: "k"}, false); d.Reason != ReasonSplit {
		t.Errorf("progressive reason %s, want SPLIT", d.Reason)
	}
	// Past the last step at 100%, "steps" is settled; "linear", never
	// evaluated for over 30 days, is unused: both are flag debt.
	stale := s.Stale(StaleOptions{})
	if len(stale) != 2 || stale[0].Key != "linear" || stale[0].Why != "unused" ||
		stale[1].Key != "steps" || stale[1].Why != "settled" || stale[1].Variant != "on" {
		t.Errorf("stale = %+v, want linear unused, steps settled on", stale)
	}
	// Seen from an earlier time, "steps" is still ramping and in use.
	clk.t = t2
	s.Bool("linear", EvalContext{TargetingKey: "k"}, false)
	if stale := s.Stale(StaleOptions{After: time.Hour}); len(stale) != 0 {
		t.Errorf("stale at t2 = %+v, want none", stale)
	}
}

func TestBucketByInteger(t *testing.T) {
	s, _ := newStore(t, Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off", BucketBy: "uid",
		Serve: Serve{Rollout: []Weight{{"on", 50}, {"off", 50}}}}}})
	for i := range 1000 {
		byString := s.Bool("f", EvalContext{Attributes: map[string]any{"uid": strconv.Itoa(i)}}, false)
		for _, v := range []any{i, int64(i), uint32(i), float64(i)} {
			if got := s.BoolDetail("f", EvalContext{Attributes: map[string]any{"uid": v}}, false); got.Value != byString || got.Reason != ReasonSplit {
				t.Fatalf("uid %v (%T): %+v, as a string %v", v, v, got, byString)
			}
		}
	}
	if d := s.BoolDetail("f", EvalContext{Attributes: map[string]any{"uid": 1.5}}, false); d.Reason != ReasonDefault {
		t.Errorf("fractional uid: %+v", d)
	}
	if !raceEnabled {
		ec := EvalContext{Attributes: map[string]any{"uid": int64(1234567)}}
		if n := testing.AllocsPerRun(100, func() { s.Bool("f", ec, false) }); n != 0 {
			t.Errorf("integer bucketing: %v allocs", n)
		}
	}
}
