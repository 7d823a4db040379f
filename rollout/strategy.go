package rollout

import (
	"fmt"
	"time"
)

// The strategies below build the usual plans from steps; their results
// can be concatenated with other steps (hooks, migrations) into a Plan.

// CanaryOptions configure Canary. Weights is required; the other zero
// fields mean no pause and no analysis.
type CanaryOptions struct {
	// Weights are the canary weights in basis points, in order (e.g. 100,
	// 500, 2500, 10000).
	Weights []uint32
	// Pause after each weight before its analysis; zero means none, and a
	// negative value means "until promoted".
	Pause time.Duration
	// Analyzer judges each weight; nil means no analysis.
	Analyzer Analyzer
	// Analysis configures each Analyze step.
	Analysis AnalysisOptions
	// Prefix starts the steps' names: "<Prefix>-weight-<w>",
	// "<Prefix>-pause-<w>", "<Prefix>-analysis-<w>". Empty means
	// "canary".
	Prefix string
}

// Canary builds set-weight, pause and analyze steps for each weight. A
// failed analysis sets the weight back to 0 (the set-weight rollback).
func Canary(w WeightSetter, o CanaryOptions) ([]Step, error) {
	if len(o.Weights) == 0 {
		return nil, &PlanError{Step: -1, Reason: "canary with no weights"}
	}
	p := o.Prefix
	if p == "" {
		p = "canary"
	}
	var steps []Step
	for _, bp := range o.Weights {
		steps = append(steps, SetWeight(w, bp).Named(fmt.Sprintf("%s-weight-%d", p, bp)))
		switch {
		case o.Pause > 0:
			steps = append(steps, Pause(o.Pause).Named(fmt.Sprintf("%s-pause-%d", p, bp)))
		case o.Pause < 0:
			steps = append(steps, PauseUntilPromoted().Named(fmt.Sprintf("%s-pause-%d", p, bp)))
		}
		if o.Analyzer != nil {
			steps = append(steps, Analyze(o.Analyzer, o.Analysis).Named(fmt.Sprintf("%s-analysis-%d", p, bp)))
		}
	}
	return steps, nil
}

// BlueGreenStrategy builds a blue-green plan: optional pre-promotion
// analysis hook, the BlueGreen step, and an optional post-promotion hook.
func BlueGreenStrategy(u Upgrader, to string, bake BakeOptions, prePromotion, postPromotion HookFunc) []Step {
	var steps []Step
	if prePromotion != nil {
		steps = append(steps, Hook(prePromotion, HookOptions{}).Named("blue-green-pre-rollout"))
	}
	steps = append(steps, BlueGreen(u, to, bake).Named("blue-green-"+to))
	if postPromotion != nil {
		steps = append(steps, Hook(postPromotion, HookOptions{}).Named("blue-green-post-rollout"))
	}
	return steps
}

// ProgressiveFlag builds the steps that ramp a flag with analysis between
// percentages (and at the last one), named "flag-<key>".
func ProgressiveFlag(f FlagRamper, key string, o RampOptions) []Step {
	return []Step{RampFlag(f, key, o).Named("flag-" + key)}
}

// ExpandContractOptions configure ExpandContract. Migrator, Migration,
// Flags, ReadFlag, Registry and Version are required; zero optional fields
// mean no deploy steps, no dual-write flag, reads switched at 100% at once,
// DefaultRampInterval and DefaultPollInterval.
type ExpandContractOptions struct {
	// Migrator runs the phases of the migration named Migration (both
	// required).
	Migrator  MigrationPhaser
	Migration string
	// Deploy are the steps that put the new version in place (Upgrade,
	// BlueGreen, Rolling, a Canary...), run after the expand.
	Deploy []Step
	// Flags ramps DualWriteFlag and ReadFlag (required).
	Flags FlagRamper
	// DualWriteFlag, if set, is turned to 100% after the deploy: the new
	// code writes both the old and the new column while it is on.
	DualWriteFlag string
	// ReadFlag switches reads to the new column, ramped through
	// ReadPercentages (default 100 at once) with Analyzer between, one
	// step every RampInterval (zero means DefaultRampInterval). A nil
	// Analyzer ramps without analysis.
	ReadFlag        string
	ReadPercentages []float64
	RampInterval    time.Duration
	Analyzer        Analyzer
	// Registry and Version gate the contract: it runs only when no
	// instance of a version other than Version is alive, checked every
	// Poll (zero means DefaultPollInterval).
	Registry InstanceRegistry
	Version  string
	Poll     time.Duration
}

// ExpandContract builds the whole choreography of a breaking schema change:
// expand (migration start), deploy the new version, dual write, backfill,
// switch reads through a flag (step "<migration>-read-flag"), record the
// switch (the migration's switch-reads phase, step
// "<migration>-switch-reads"), wait until old versions are gone, contract
// (migration complete, irreversible). Every step before the contract rolls
// back; the contract never does.
func ExpandContract(o ExpandContractOptions) ([]Step, error) {
	switch {
	case o.Migrator == nil || o.Migration == "":
		return nil, &PlanError{Step: -1, Reason: "expand-contract needs Migrator and Migration"}
	case o.Flags == nil || o.ReadFlag == "":
		return nil, &PlanError{Step: -1, Reason: "expand-contract needs Flags and ReadFlag"}
	case o.Registry == nil || o.Version == "":
		return nil, &PlanError{Step: -1, Reason: "expand-contract needs Registry and Version"}
	}
	if len(o.ReadPercentages) == 0 {
		o.ReadPercentages = []float64{100}
	}
	m := o.Migration
	steps := []Step{Migration(o.Migrator, m, MigrationStart).Named(m + "-expand")}
	steps = append(steps, o.Deploy...)
	if o.DualWriteFlag != "" {
		steps = append(steps, RampFlag(o.Flags, o.DualWriteFlag, RampOptions{Percentages: []float64{100}}).Named(m+"-dual-write-flag"))
	}
	steps = append(steps,
		Migration(o.Migrator, m, MigrationBackfill).Named(m+"-backfill"),
		// The flag moves the application's reads; then the migration
		// records that they moved (migrate's Complete requires phase
		// read_new).
		RampFlag(o.Flags, o.ReadFlag, RampOptions{Percentages: o.ReadPercentages, Interval: o.RampInterval, Analyzer: o.Analyzer}).Named(m+"-read-flag"),
		Migration(o.Migrator, m, MigrationSwitchReads).Named(m+"-switch-reads"),
		WaitOldGone(o.Registry, o.Version, o.Poll).Named(m+"-wait-old-gone"),
		Migration(o.Migrator, m, MigrationComplete).Named(m+"-contract"),
	)
	return steps, nil
}
