package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"gopkg.in/yaml.v3"
)

// Release is a release as data: the version it installs, its binary, and
// the steps that roll it out, with their parameters. It is what an
// operator writes (release.yaml), what POST /api/start and
// `rolloutctl start` take, and what the rollout's state keeps
// (Status.Release), so that every process that drives the rollout (the
// old binary before an upgrade, the new one after, a process restarted
// after a crash) builds the same plan from it, each with its own adapters
// (Release.Plan with Bindings). Consumers (the canary analyzer, the flag
// store, the migrations) are named, never described: the manifest holds
// no code and nothing in it reaches a shell or an SQL string.
//
// The zero value is invalid: ID, Version and at least one step are
// required. See ParseRelease for the format.
type Release struct {
	// ID names the rollout in the Store (see ValidID): one per release,
	// e.g. "orders-v2".
	ID string `json:"id" yaml:"id"`
	// Version is the version the release installs; the process running
	// it drives the steps after the upgrade.
	Version string `json:"version" yaml:"version"`
	// Binary is the path of the new version's executable, given to the
	// Upgrader of upgrade and blue-green steps (see SpecUpgrader). Empty
	// means the Upgrader's default (the binary at the path the service
	// was started from).
	Binary string `json:"binary,omitempty" yaml:"binary,omitempty"`
	// Steps are the release's steps in order.
	Steps []ReleaseStep `json:"steps" yaml:"steps"`

	lines []int // line of each step in the parsed document, for errors
	src   string
}

// ReleaseStep is one step of a Release: exactly one of the kind fields is
// set, with that kind's parameters. Name and Timeout apply to any kind;
// an empty Name means the step's default name (see Step.Name). The zero
// value sets no kind and is refused.
type ReleaseStep struct {
	Name    string   `json:"name,omitempty" yaml:"name,omitempty"`
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`

	Upgrade     *UpgradeParams     `json:"upgrade,omitempty" yaml:"upgrade,omitempty"`
	BlueGreen   *BlueGreenParams   `json:"blueGreen,omitempty" yaml:"blueGreen,omitempty"`
	SetWeight   *SetWeightParams   `json:"setWeight,omitempty" yaml:"setWeight,omitempty"`
	Canary      *CanaryParams      `json:"canary,omitempty" yaml:"canary,omitempty"`
	Pause       *PauseParams       `json:"pause,omitempty" yaml:"pause,omitempty"`
	Analyze     *AnalyzeParams     `json:"analyze,omitempty" yaml:"analyze,omitempty"`
	RampFlag    *RampFlagParams    `json:"rampFlag,omitempty" yaml:"rampFlag,omitempty"`
	Migration   *MigrationParams   `json:"migration,omitempty" yaml:"migration,omitempty"`
	WaitOldGone *WaitOldGoneParams `json:"waitOldGone,omitempty" yaml:"waitOldGone,omitempty"`
	Hook        *HookParams        `json:"hook,omitempty" yaml:"hook,omitempty"`
}

// UpgradeParams are an upgrade step's (a plain handoff to Release.Version
// with Release.Binary). The zero value is complete.
type UpgradeParams struct{}

// BlueGreenParams are a blue-green step's: the bake window, its analyzers
// by name, and the canary weight the new process starts with. Zero fields
// mean BakeOptions' defaults and no start weight.
type BlueGreenParams struct {
	Window        Duration `json:"window,omitempty" yaml:"window,omitempty"`
	Interval      Duration `json:"interval,omitempty" yaml:"interval,omitempty"`
	Analyzers     []string `json:"analyzers,omitempty" yaml:"analyzers,omitempty"`
	MinConclusive int      `json:"minConclusive,omitempty" yaml:"minConclusive,omitempty"`
	// StartWeight, if set, adds a set-weight step before the blue-green
	// step (named "<name>-start-weight"): the old process records it and
	// the new process serves its canary at that weight from its start.
	StartWeight *uint32 `json:"startWeight,omitempty" yaml:"startWeight,omitempty"`
}

// SetWeightParams are a set-weight step's: the canary weight in basis
// points (0..10000).
type SetWeightParams struct {
	Weight uint32 `json:"weight" yaml:"weight"`
}

// CanaryParams expand to the steps of the Canary strategy: for each
// weight a set-weight step, a pause and an analysis (named
// "<name>-weight-<w>", "<name>-pause-<w>", "<name>-analysis-<w>", name
// defaulting to "canary"). Analysis holds AnalysisOptions' fields.
type CanaryParams struct {
	Weights        []uint32 `json:"weights" yaml:"weights"`
	Pause          Duration `json:"pause,omitempty" yaml:"pause,omitempty"`
	Analyzer       string   `json:"analyzer,omitempty" yaml:"analyzer,omitempty"`
	AnalysisParams `yaml:",inline"`
}

// PauseParams are a pause step's: zero Duration means until promoted.
type PauseParams struct {
	Duration Duration `json:"duration,omitempty" yaml:"duration,omitempty"`
}

// AnalysisParams are AnalysisOptions in a manifest; zero fields mean its
// defaults.
type AnalysisParams struct {
	Count            int      `json:"count,omitempty" yaml:"count,omitempty"`
	Interval         Duration `json:"interval,omitempty" yaml:"interval,omitempty"`
	MaxInconclusive  int      `json:"maxInconclusive,omitempty" yaml:"maxInconclusive,omitempty"`
	MinConclusive    int      `json:"minConclusive,omitempty" yaml:"minConclusive,omitempty"`
	FailInconclusive bool     `json:"failInconclusive,omitempty" yaml:"failInconclusive,omitempty"`
}

// AnalyzeParams are an analyze step's: the analyzer by name and its
// options.
type AnalyzeParams struct {
	Analyzer       string `json:"analyzer" yaml:"analyzer"`
	AnalysisParams `yaml:",inline"`
}

// RampFlagParams are a ramp-flag step's (RampOptions, with the analyzer by
// name).
type RampFlagParams struct {
	Flag             string    `json:"flag" yaml:"flag"`
	Percentages      []float64 `json:"percentages" yaml:"percentages"`
	Interval         Duration  `json:"interval,omitempty" yaml:"interval,omitempty"`
	Analyzer         string    `json:"analyzer,omitempty" yaml:"analyzer,omitempty"`
	FailInconclusive bool      `json:"failInconclusive,omitempty" yaml:"failInconclusive,omitempty"`
}

// MigrationParams are a migration step's: the migration by name and the
// phase (start, backfill, switch-reads, complete).
type MigrationParams struct {
	Name  string         `json:"name" yaml:"name"`
	Phase MigrationPhase `json:"phase" yaml:"phase"`
}

// WaitOldGoneParams are a wait-old-gone step's (for Release.Version).
type WaitOldGoneParams struct {
	Poll Duration `json:"poll,omitempty" yaml:"poll,omitempty"`
}

// HookParams are a hook step's: the hook by name (Bindings.Hooks), and
// whether it is a confirm gate called every Interval.
type HookParams struct {
	Hook     string   `json:"hook" yaml:"hook"`
	Confirm  bool     `json:"confirm,omitempty" yaml:"confirm,omitempty"`
	Interval Duration `json:"interval,omitempty" yaml:"interval,omitempty"`
}

// Duration is a time.Duration written as Go writes it ("30s", "1m30s") in
// a manifest. The zero value is no duration.
type Duration time.Duration

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "30s" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if json.Unmarshal(b, &n) != nil {
			return fmt.Errorf("duration %s: want a string such as \"30s\"", b)
		}
		*d = Duration(n)
		return nil
	}
	return d.parse(s)
}

// UnmarshalYAML reads "30s".
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: duration: want a string such as \"30s\"", n.Line)
	}
	if err := d.parse(n.Value); err != nil {
		return fmt.Errorf("line %d: %w", n.Line, err)
	}
	return nil
}

func (d *Duration) parse(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, errors.Unwrap(err))
	}
	*d = Duration(v)
	return nil
}

// clone copies the release for a state of its own (the parameters are
// never changed once parsed, so they are shared).
func (rel *Release) clone() *Release {
	c := *rel
	c.Steps = append([]ReleaseStep(nil), rel.Steps...)
	return &c
}
