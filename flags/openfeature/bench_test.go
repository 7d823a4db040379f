package openfeature_test

import (
	"context"
	"testing"

	of "github.com/open-feature/go-sdk/openfeature"
	"github.com/open-feature/go-sdk/openfeature/isolated"

	"github.com/batonhq/baton/flags"
	"github.com/batonhq/baton/flags/openfeature"
)

func benchProvider(b *testing.B) (*openfeature.Provider, *flags.Store) {
	store, err := flags.New(flags.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { store.Close() })
	err = store.Set("bench", flags.Config{Flags: map[string]flags.Flag{"f": {
		Variants: map[string]any{"on": true, "off": false}, Default: "off",
		Rules:    []flags.Rule{{If: &flags.Condition{Attr: "plan", Op: flags.OpEquals, Value: "pro"}, Serve: flags.Serve{Variant: "on"}}},
		Metadata: map[string]any{"owner": "bench"},
	}}})
	if err != nil {
		b.Fatal(err)
	}
	return openfeature.New(store, openfeature.Options{}), store
}

// BenchmarkProviderBoolean measures the provider method the SDK calls,
// with a flattened context as the SDK builds it.
func BenchmarkProviderBoolean(b *testing.B) {
	p, _ := benchProvider(b)
	flat := of.FlattenedContext{"targetingKey": "user-1", "plan": "pro"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if !p.BooleanEvaluation(ctx, "f", false, flat).Value {
			b.Fatal("rule did not match")
		}
	}
}

// BenchmarkClientBoolean measures the whole SDK client path around the
// provider, for comparison: the SDK's own cost (hooks, context merging).
func BenchmarkClientBoolean(b *testing.B) {
	p, _ := benchProvider(b)
	api := isolated.NewAPI()
	b.Cleanup(func() { api.Shutdown(context.Background()) })
	if err := api.SetProviderAndWait(context.Background(), p); err != nil {
		b.Fatal(err)
	}
	client := api.NewClient()
	ec := of.NewEvaluationContext("user-1", map[string]any{"plan": "pro"})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if !client.Boolean(ctx, "f", false, ec) {
			b.Fatal("rule did not match")
		}
	}
}
