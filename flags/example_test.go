package flags_test

import (
	"fmt"

	"github.com/batonhq/baton/flags"
)

func Example() {
	store, err := flags.New(flags.Options{})
	if err != nil {
		panic(err)
	}
	defer store.Close()

	err = store.Set("code", flags.Config{Flags: map[string]flags.Flag{
		"new-checkout": {
			Variants: map[string]any{"on": true, "off": false},
			Default:  "off",
			Rules: []flags.Rule{{
				Name:  "pro users in France",
				If:    &flags.Condition{All: []flags.Condition{{Attr: "plan", Op: flags.OpEquals, Value: "pro"}, {Attr: "country", Op: flags.OpIn, Values: []any{"FR"}}}},
				Serve: flags.Serve{Variant: "on"},
			}},
			// Everyone else: 10% of users, by a hash of their targeting key.
			Serve: flags.Serve{Rollout: []flags.Weight{{Variant: "on", Weight: 10}, {Variant: "off", Weight: 90}}},
		},
	}})
	if err != nil {
		panic(err)
	}

	pro := flags.EvalContext{TargetingKey: "user-1", Attributes: map[string]any{"plan": "pro", "country": "FR"}}
	d := store.BoolDetail("new-checkout", pro, false)
	fmt.Println(d.Value, d.Variant, d.Reason)

	free := flags.EvalContext{TargetingKey: "user-2", Attributes: map[string]any{"plan": "free"}}
	d = store.BoolDetail("new-checkout", free, false)
	fmt.Println(d.Value, d.Variant, d.Reason)

	d = store.BoolDetail("no-such-flag", free, true)
	fmt.Println(d.Value, d.Reason, d.ErrorCode)
	// Output:
	// true on TARGETING_MATCH
	// false off SPLIT
	// true ERROR FLAG_NOT_FOUND
}

func ExampleParse() {
	cfg, err := flags.Parse("flags.yaml", []byte(`
flags:
  banner:
    variants: {blue: "#00f", red: "#f00"}
    default: blue
    rules:
      - if: {attr: appVersion, op: semver_lt, value: "2.0.0"}
        serve: red
`))
	if err != nil {
		panic(err)
	}
	store, _ := flags.New(flags.Options{})
	defer store.Close()
	if err := store.Set("files", cfg); err != nil {
		panic(err)
	}
	old := flags.EvalContext{Attributes: map[string]any{"appVersion": "1.9.3"}}
	fmt.Println(store.String("banner", old, ""))

	// A bad definition is refused with its file, flag, line and field.
	_, err = flags.Parse("flags.yaml", []byte("flags:\n  banner:\n    variants: {blue: 1}\n    defualt: blue\n"))
	fmt.Println(err)
	// Output:
	// #f00
	// flags: flags.yaml:4: flag "banner": defualt: unknown field (expected one of type, variants, default, disabled, offVariant, salt, bucketBy, prerequisites, rules, serve, metadata, description)
}
