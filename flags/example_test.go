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

// ExampleDocumentSource shows a host following a fleet's document: the
// transport applies each version it receives, and a run-time change made
// anywhere becomes a new version through EditOverride.
func ExampleDocumentSource() {
	store, _ := flags.New(flags.Options{})
	defer store.Close()
	src, _ := flags.NewDocumentSource(store, flags.DocumentOptions{}) // CacheFile: keep a copy for restarts
	fmt.Println("stale before the transport delivers:", len(store.StaleSources()) == 1)

	v1 := []byte("flags:\n  checkout:\n    variants: {on: true, off: false}\n    default: off\n")
	// Where the change is made, before it is stored:
	if err := flags.ValidateDocument("fleet.yaml", v1); err != nil {
		panic(err)
	}
	// On every host, as the transport delivers version 1:
	if err := src.Apply(flags.Document{Version: 1, Name: "fleet.yaml", Data: v1}); err != nil {
		panic(err)
	}
	user := flags.EvalContext{TargetingKey: "user-7"}
	fmt.Println("v1:", store.Bool("checkout", user, false), len(store.StaleSources()) == 0)

	// A ramp to 100% on any host: a new version with an override.
	v2, err := flags.EditOverride("fleet.yaml", v1, "checkout", func(o *flags.Override) error {
		o.Percent = &flags.Percent{Variant: "on", Percent: 100}
		return nil
	})
	if err != nil {
		panic(err)
	}
	if err := src.Apply(flags.Document{Version: 2, Name: "fleet.yaml", Data: v2}); err != nil {
		panic(err)
	}
	fmt.Println("v2:", store.Bool("checkout", user, false))
	fmt.Print(string(v2))

	// A bad document never gets this far, and says where it is wrong.
	fmt.Println(flags.ValidateDocument("fleet.yaml", []byte("flags:\n  checkout:\n    variants: {on: true}\n    default: of\n")))
	// Output:
	// stale before the transport delivers: true
	// v1: false true
	// v2: true
	// flags:
	//   checkout:
	//     variants: {on: true, off: false}
	//     default: off
	// overrides:
	//   checkout: {percent: {variant: "on", percent: 100}}
	// flags: fleet.yaml:2: flag "checkout": default: unknown variant "of" (have ["on"])
}
