package flags

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
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

// BenchmarkEvalRuleMetrics is BenchmarkEvalRule with a real OpenTelemetry
// SDK MeterProvider: the evaluation counters are the usage counters, read
// at collection, so the hot path costs the same.
func BenchmarkEvalRuleMetrics(b *testing.B) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	b.Cleanup(func() { mp.Shutdown(context.Background()) })
	s, err := New(Options{MeterProvider: mp})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Set("bench", Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off",
		Rules: []Rule{{If: twoConds("FR", "pro"), Serve: Serve{Variant: "on"}}}}}}); err != nil {
		b.Fatal(err)
	}
	ec := EvalContext{TargetingKey: "u", Attributes: map[string]any{"country": "FR", "plan": "pro"}}
	b.ReportAllocs()
	for b.Loop() {
		if !s.Bool("f", ec, false) {
			b.Fatal("rule did not match")
		}
	}
	b.StopTimer()
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkMetricsCollect measures one collection of the evaluation
// counter for 1,000 flags with two variants each: the cost moved off the
// hot path.
func BenchmarkMetricsCollect(b *testing.B) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	b.Cleanup(func() { mp.Shutdown(context.Background()) })
	s, err := New(Options{MeterProvider: mp})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.Set("bench", thousandFlags()); err != nil {
		b.Fatal(err)
	}
	for _, st := range s.Flags() {
		s.Bool(st.Key, EvalContext{TargetingKey: "u", Attributes: map[string]any{"plan": "pro", "country": "FR"}}, false)
		s.Bool(st.Key, EvalContext{TargetingKey: "v"}, false)
	}
	b.ReportAllocs()
	for b.Loop() {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			b.Fatal(err)
		}
	}
}

// thousandFlags is a realistic file-sized configuration: 1,000 flags, each
// with two variants, a rule of two conditions and a 10% rollout.
func thousandFlags() Config {
	cfg := Config{Flags: map[string]Flag{}}
	for i := range 1000 {
		cfg.Flags["flag-"+strconv.Itoa(i)] = Flag{Variants: map[string]any{"on": true, "off": false}, Default: "off",
			Metadata: map[string]any{"owner": "team-" + strconv.Itoa(i%10)},
			Rules:    []Rule{{Name: "pro in FR", If: twoConds("FR", "pro"), Serve: Serve{Variant: "on"}}},
			Serve:    Serve{Rollout: []Weight{{"on", 10}, {"off", 90}}}}
	}
	return cfg
}

// BenchmarkCompileThousand compiles and swaps in 1,000 flags (Store.Set).
func BenchmarkCompileThousand(b *testing.B) {
	s := benchStore(b, Config{})
	cfg := thousandFlags()
	b.ReportAllocs()
	for b.Loop() {
		if err := s.Set("bench", cfg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkParseCompileThousand parses a 1,000-flag file and compiles it:
// the whole reload minus the file system wait, for YAML (yaml.v3's parser
// dominates) and JSON (encoding/json's tokenizer).
func BenchmarkParseCompileThousand(b *testing.B) {
	for _, tc := range []struct {
		name string
		data []byte
	}{{"flags.yaml", thousandFlagsYAML()}, {"flags.json", thousandFlagsJSON()}} {
		b.Run(filepath.Ext(tc.name)[1:], func(b *testing.B) {
			s := benchStore(b, Config{})
			b.SetBytes(int64(len(tc.data)))
			b.ReportAllocs()
			for b.Loop() {
				cfg, err := Parse(tc.name, tc.data)
				if err != nil {
					b.Fatal(err)
				}
				if err := s.Set("bench", cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func thousandFlagsJSON() []byte {
	var sb strings.Builder
	sb.WriteString("{\"flags\": {\n")
	for i := range 1000 {
		if i > 0 {
			sb.WriteString(",\n")
		}
		fmt.Fprintf(&sb, `  "flag-%d": {
    "variants": {"on": true, "off": false},
    "default": "off",
    "metadata": {"owner": "team-%d"},
    "rules": [{"name": "pro in FR",
      "if": {"all": [{"attr": "country", "op": "in", "values": ["FR", "XX"]}, {"attr": "plan", "op": "equals", "value": "pro"}]},
      "serve": "on"}],
    "serve": {"rollout": [{"variant": "on", "weight": 10}, {"variant": "off", "weight": 90}]}
  }`, i, i%10)
	}
	sb.WriteString("\n}}\n")
	return []byte(sb.String())
}

func thousandFlagsYAML() []byte { return flagsYAML(1000) }

// flagsYAML is a flag file of n flags shaped like thousandFlags.
func flagsYAML(n int) []byte {
	var sb strings.Builder
	sb.WriteString("flags:\n")
	for i := range n {
		fmt.Fprintf(&sb, `  flag-%d:
    variants: {on: true, off: false}
    default: off
    metadata: {owner: team-%d}
    rules:
      - name: pro in FR
        if:
          all:
            - {attr: country, op: in, values: [FR, XX]}
            - {attr: plan, op: equals, value: pro}
        serve: on
    serve:
      rollout: [{variant: on, weight: 10}, {variant: off, weight: 90}]
`, i, i%10)
	}
	return []byte(sb.String())
}

// BenchmarkHeapThousand reports the heap held by a Store with 1,000 flags
// (compiled snapshot, usage counters, definitions kept for listings).
func BenchmarkHeapThousand(b *testing.B) {
	cfg := thousandFlags()
	var ms runtime.MemStats
	var total uint64
	for b.Loop() {
		runtime.GC()
		runtime.ReadMemStats(&ms)
		before := ms.HeapAlloc
		s, err := New(Options{Now: time.Now})
		if err != nil {
			b.Fatal(err)
		}
		if err := s.Set("bench", cfg); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&ms)
		total += ms.HeapAlloc - before
		runtime.KeepAlive(s)
		s.Close()
	}
	b.ReportMetric(float64(total)/float64(b.N)/(1<<20), "MB-heap")
}

// BenchmarkReloadVisible measures a file replaced (written aside, renamed
// over) until the new value is served: fsnotify, debounce
// (DefaultDebounce), parse, compile, swap. The "thousand" cases reload a
// 1,000-flag file.
func BenchmarkReloadVisible(b *testing.B) {
	yamlBody := string(thousandFlagsYAML()[len("flags:\n"):])
	jsonBody := string(thousandFlagsJSON()[len("{\"flags\": {\n"):])
	b.Run("one", func(b *testing.B) { benchReload(b, "flags.yaml", flagFile) })
	b.Run("thousand-yaml", func(b *testing.B) {
		benchReload(b, "flags.yaml", func(c string) string { return flagFile(c) + yamlBody })
	})
	b.Run("thousand-json", func(b *testing.B) {
		benchReload(b, "flags.json", func(c string) string {
			return "{\"flags\": {\"color\": {\"type\": \"string\", \"variants\": {\"a\": \"" + c + "\", \"b\": \"other\"}, \"default\": \"a\"},\n" + jsonBody
		})
	})
}

func benchReload(b *testing.B, name string, body func(color string) string) {
	dir := b.TempDir()
	path := filepath.Join(dir, name)
	writeFile(b, path, body("c0"))
	s, err := New(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	fs, err := NewFileSource(s, FileOptions{Paths: []string{path}})
	if err != nil {
		b.Fatal(err)
	}
	defer fs.Close()
	ch := events(b, s)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		want := "c" + strconv.Itoa(i+1)
		replaceFile(b, path, body(want))
		next(b, ch, EventUpdated)
		if got := color(s); got != want {
			b.Fatalf("served %q, want %q", got, want)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/1000/float64(b.N), "ms/reload")
}

// benchCond times one flag whose single rule is c, for ec.
func benchCond(b *testing.B, c Condition, ec EvalContext, want bool) {
	s := benchStore(b, Config{Flags: map[string]Flag{"f": {Variants: onOff, Default: "off",
		Rules: []Rule{{If: &c, Serve: Serve{Variant: "on"}}}}}})
	b.ReportAllocs()
	for b.Loop() {
		if s.Bool("f", ec, false) != want {
			b.Fatalf("rule matched %v, want %v", !want, want)
		}
	}
}

// BenchmarkEvalMatches times the matches operator: a typical expression on
// a typical attribute; an e-mail expression on a hostile 4 KiB attribute;
// the ceiling, the slowest expression found within MaxRegexpProgram on an
// attribute of MaxAttributeLen bytes; and an attribute over the limit,
// which costs a length check.
func BenchmarkEvalMatches(b *testing.B) {
	ua := "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	for _, bc := range []struct {
		name, expr, attr string
		want             bool
	}{
		{"typical", `^Mozilla/5\.0 \((iPhone|iPad)`, ua, true},
		{"email-4KiB", `[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$`, strings.Repeat("a", MaxAttributeLen), false},
		{"worst-4KiB", worstRegexp, strings.Repeat("a", MaxAttributeLen), true},
		{"worst-1MiB", worstRegexp, strings.Repeat("a", 1<<20), false},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchCond(b, Condition{Attr: "ua", Op: OpMatches, Value: bc.expr}, EvalContext{Attributes: map[string]any{"ua": bc.attr}}, bc.want)
		})
	}
}

// BenchmarkEvalStringOps times the other operators that read a string on
// an attribute of MaxAttributeLen bytes (their ceiling) and of 1 MiB
// (refused by its length).
func BenchmarkEvalStringOps(b *testing.B) {
	in := Condition{Attr: "a", Op: OpIn, Values: []any{"a", "b", "c", "d", "e", "f", "g", "h", "i"}}
	for _, size := range []struct {
		name string
		n    int
	}{{"4KiB", MaxAttributeLen}, {"1MiB", 1 << 20}} {
		attr := strings.Repeat("ab", size.n/2)
		for _, c := range []Condition{
			{Attr: "a", Op: OpContains, Value: "abc"},
			{Attr: "a", Op: OpEndsWith, Value: "ba"},
			{Attr: "a", Op: OpSemverGT, Value: "1.0.0"},
			in,
		} {
			b.Run(string(c.Op)+"-"+size.name, func(b *testing.B) {
				benchCond(b, c, EvalContext{Attributes: map[string]any{"a": attr}}, false)
			})
		}
	}
}

// BenchmarkDocumentApply applies a new version of a document, as a fleet's
// transport does on every host: validate, compile, swap, and write the
// cache (synced to disk) when there is one. "thousand" is a 1,000-flag
// document; the two bodies alternate so that every version changes a flag.
func BenchmarkDocumentApply(b *testing.B) {
	for _, bc := range []struct {
		name  string
		body  []byte
		cache bool
	}{
		{"small", []byte(flagFile("a")), false},
		{"small-cached", []byte(flagFile("a")), true},
		{"thousand", thousandFlagsYAML(), false},
		{"thousand-cached", thousandFlagsYAML(), true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := benchStore(b, Config{})
			var opts DocumentOptions
			if bc.cache {
				opts.CacheFile = filepath.Join(b.TempDir(), "flags.cache")
			}
			src, err := NewDocumentSource(s, opts)
			if err != nil {
				b.Fatal(err)
			}
			bodies := [2][]byte{bc.body, bytes.Replace(bc.body, []byte("default: a"), []byte("default: b"), 1)}
			if bytes.Equal(bodies[0], bodies[1]) {
				bodies[1] = bytes.Replace(bc.body, []byte("default: off"), []byte("default: on"), 1)
			}
			b.SetBytes(int64(len(bc.body)))
			b.ReportAllocs()
			v := uint64(0)
			for b.Loop() {
				v++
				if err := src.Apply(Document{Version: v, Name: "fleet.yaml", Data: bodies[v%2]}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
