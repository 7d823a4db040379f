package rollout

import (
	"context"
	"fmt"
	"time"
)

// Bindings are a process's own adapters, to which Release.Plan binds a
// release's steps. The old binary and the new one bind the same manifest
// each to what it has: names that only the other side runs may be missing
// here (see Release.Plan). The zero value binds nothing: a release of
// pauses only.
type Bindings struct {
	// Version is the version this process runs (Options.Version).
	Version string
	// Upgrader runs upgrade and blue-green steps; a blue-green step needs
	// it to implement BakeController, and the release's binary reaches it
	// through SpecUpgrader.
	Upgrader Upgrader
	// Weights sets the canary weight in the process of the release's
	// version. In a process of another version the weight steps are bound
	// to RecordWeight, whatever Weights is: that binary's splitter is not
	// the release's.
	Weights WeightSetter
	// Flags ramps flags; Migrations runs migration phases by name;
	// Registry answers wait-old-gone steps.
	Flags      FlagRamper
	Migrations MigrationPhaser
	Registry   InstanceRegistry
	// Analyzers and Hooks are what the manifest names.
	Analyzers map[string]Analyzer
	Hooks     map[string]HookFunc
}

// Plan binds the release to b and returns its plan (with Plan.Release
// set, so that New stores the manifest with the state).
//
// The steps up to the release's upgrade (or blue-green) step run in the
// process of the old version, the ones after it in the process of
// rel.Version; the rollback of each runs on the same side, since a
// rollback hands back to the old process before it reaches the earlier
// steps. A process binds its own side fully: a name its adapters lack is
// an error, so that a release is refused before anything moves. Names the
// other side needs may be missing here; such steps are bound to a stand-in
// that fails if it is ever called, and the other side checks them when it
// starts (a new process that cannot bind its side fails before it is
// ready, and the upgrade fails in the old process). A release with no
// upgrade step runs wholly in the current process.
func (rel *Release) Plan(b Bindings) (Plan, error) {
	if err := rel.Validate(); err != nil {
		return Plan{}, err
	}
	if b.Version == "" {
		return Plan{}, &ReleaseError{File: rel.src, Step: -1, Reason: "Bindings.Version is empty: a process binds a release as the version it runs"}
	}
	up := -1
	for i, s := range rel.Steps {
		if s.Upgrade != nil || s.BlueGreen != nil {
			up = i
		}
	}
	newSide := b.Version == rel.Version
	bd := &binder{rel: rel, b: b, newSide: newSide}
	var steps []Step
	for i, rs := range rel.Steps {
		// Whose side is step i on? Before the upgrade the old process's,
		// after it the new one's; the upgrade step is both sides' (the
		// old process hands off, the new one bakes); with no upgrade,
		// everything is this process's.
		bd.i, bd.upgrade = i, i == up
		bd.mine = up < 0 || i == up || (i < up) != newSide
		got, err := bd.step(rs)
		if err != nil {
			return Plan{}, bd.fail(err)
		}
		steps = append(steps, got...)
	}
	if len(steps) > MaxReleaseSteps {
		return Plan{}, &ReleaseError{File: rel.src, Step: -1, Reason: fmt.Sprintf("%d steps after expanding canaries, more than %d", len(steps), MaxReleaseSteps)}
	}
	return Plan{ID: rel.ID, Steps: steps, Release: rel.clone()}.normalize()
}

// binder binds one step at a time.
type binder struct {
	rel     *Release
	b       Bindings
	newSide bool // this process runs the release's version
	i       int
	mine    bool // this process runs step i (or its rollback)
	upgrade bool // step i is the upgrade, whose bake only the new side runs
}

func (bd *binder) fail(err error) error {
	e := &ReleaseError{File: bd.rel.src, Step: bd.i, Name: bd.rel.Steps[bd.i].Name, Reason: err.Error()}
	if bd.i < len(bd.rel.lines) {
		e.Line = bd.rel.lines[bd.i]
	}
	return e
}

// missing is the error for a name this side must bind and cannot, or a
// stand-in when the other side runs the step.
func (bd *binder) missing(what, name string) error {
	if bd.mine {
		return fmt.Errorf("%s %q is not known to version %s (Bindings)", what, name, bd.b.Version)
	}
	return nil
}

func (bd *binder) analyzer(name string) (Analyzer, error) {
	if name == "" {
		return nil, nil
	}
	if a := bd.b.Analyzers[name]; a != nil {
		return a, nil
	}
	if err := bd.missing("analyzer", name); err != nil {
		return nil, err
	}
	return elsewhere{what: "analyzer " + name, v: bd.b.Version}, nil
}

func (bd *binder) weights() (WeightSetter, error) {
	if bd.b.Version != bd.rel.Version {
		return RecordWeight, nil
	}
	if bd.b.Weights == nil {
		if bd.mine {
			return nil, fmt.Errorf("the release sets a canary weight and version %s has no WeightSetter (Bindings.Weights)", bd.b.Version)
		}
		return RecordWeight, nil
	}
	return bd.b.Weights, nil
}

func (bd *binder) step(rs ReleaseStep) ([]Step, error) {
	one := func(s Step) []Step {
		if rs.Name != "" {
			s.Name = rs.Name
		}
		s.Timeout = time.Duration(rs.Timeout)
		return []Step{s}
	}
	switch {
	case rs.Upgrade != nil || rs.BlueGreen != nil:
		u := bd.b.Upgrader
		if u == nil {
			if bd.mine {
				return nil, fmt.Errorf("version %s has no Upgrader (Bindings.Upgrader)", bd.b.Version)
			}
			u = elsewhere{what: "upgrader", v: bd.b.Version}
		}
		if rs.Upgrade != nil {
			return one(UpgradeBinary(u, bd.rel.Version, bd.rel.Binary)), nil
		}
		p := rs.BlueGreen
		o := BakeOptions{Window: time.Duration(p.Window), Interval: time.Duration(p.Interval), MinConclusive: p.MinConclusive, Binary: bd.rel.Binary}
		bd.mine = bd.newSide // the bake's analyzers run in the new process
		for _, name := range p.Analyzers {
			a, err := bd.analyzer(name)
			if err != nil {
				return nil, err
			}
			o.Analyzers = append(o.Analyzers, a)
		}
		bg := one(BlueGreen(u, bd.rel.Version, o))
		if p.StartWeight == nil {
			return bg, nil
		}
		// The start weight is set by the old side, just before the
		// handoff: it records the weight the new process starts with.
		w := RecordWeight
		if bd.b.Version == bd.rel.Version && bd.b.Weights != nil {
			w = bd.b.Weights // its undo runs here only if the handoff never happened
		}
		sw := SetWeight(w, *p.StartWeight).Named(bg[0].Name + "-start-weight")
		if bg[0].Name == "" {
			sw = sw.Named("blue-green-" + bd.rel.Version + "-start-weight")
		}
		return append([]Step{sw}, bg...), nil
	case rs.SetWeight != nil:
		w, err := bd.weights()
		if err != nil {
			return nil, err
		}
		return one(SetWeight(w, rs.SetWeight.Weight)), nil
	case rs.Canary != nil:
		p := rs.Canary
		w, err := bd.weights()
		if err != nil {
			return nil, err
		}
		a, err := bd.analyzer(p.Analyzer)
		if err != nil {
			return nil, err
		}
		o := CanaryOptions{Weights: p.Weights, Pause: time.Duration(p.Pause), Analyzer: a, Analysis: p.options(), Prefix: rs.Name}
		steps, err := Canary(w, o)
		if err != nil {
			return nil, err
		}
		for k := range steps {
			steps[k].Timeout = time.Duration(rs.Timeout)
		}
		return steps, nil
	case rs.Pause != nil:
		return one(Pause(time.Duration(rs.Pause.Duration))), nil
	case rs.Analyze != nil:
		a, err := bd.analyzer(rs.Analyze.Analyzer)
		if err != nil {
			return nil, err
		}
		return one(Analyze(a, rs.Analyze.options())), nil
	case rs.RampFlag != nil:
		p := rs.RampFlag
		f := bd.b.Flags
		if f == nil {
			if err := bd.missing("flag store for flag", p.Flag); err != nil {
				return nil, err
			}
			f = elsewhere{what: "flag store", v: bd.b.Version}
		}
		a, err := bd.analyzer(p.Analyzer)
		if err != nil {
			return nil, err
		}
		return one(RampFlag(f, p.Flag, RampOptions{Percentages: p.Percentages, Interval: time.Duration(p.Interval), Analyzer: a, FailInconclusive: p.FailInconclusive})), nil
	case rs.Migration != nil:
		m := bd.b.Migrations
		if m == nil {
			if err := bd.missing("migrations runner for migration", rs.Migration.Name); err != nil {
				return nil, err
			}
			m = elsewhereMigrations{elsewhere{what: "migrations", v: bd.b.Version}}
		}
		if k, ok := m.(interface{ Knows(name string) bool }); ok && !k.Knows(rs.Migration.Name) {
			if err := bd.missing("migration", rs.Migration.Name); err != nil {
				return nil, err
			}
			m = elsewhereMigrations{elsewhere{what: "migration " + rs.Migration.Name, v: bd.b.Version}}
		}
		return one(Migration(m, rs.Migration.Name, rs.Migration.Phase)), nil
	case rs.WaitOldGone != nil:
		reg := bd.b.Registry
		if reg == nil {
			if err := bd.missing("instance registry", "Bindings.Registry"); err != nil {
				return nil, err
			}
			reg = elsewhere{what: "instance registry", v: bd.b.Version}
		}
		return one(WaitOldGone(reg, bd.rel.Version, time.Duration(rs.WaitOldGone.Poll))), nil
	case rs.Hook != nil:
		h := bd.b.Hooks[rs.Hook.Hook]
		if h == nil {
			if err := bd.missing("hook", rs.Hook.Hook); err != nil {
				return nil, err
			}
			e := elsewhere{what: "hook " + rs.Hook.Hook, v: bd.b.Version}
			h = func(ctx context.Context, _ HookEvent) error { return e.fail() }
		}
		return one(Hook(h, HookOptions{Confirm: rs.Hook.Confirm, Interval: time.Duration(rs.Hook.Interval)})), nil
	}
	return nil, fmt.Errorf("no kind")
}

// elsewhere stands for an adapter only the other side of the upgrade has:
// this process never runs the step, and if it ever does, the step fails
// saying so.
type elsewhere struct{ what, v string }

func (e elsewhere) fail() error {
	return fmt.Errorf("%s is bound only in the process of the other version (this is %s)", e.what, e.v)
}

func (e elsewhere) Upgrade(context.Context) error  { return e.fail() }
func (e elsewhere) Promote(context.Context) error  { return e.fail() }
func (e elsewhere) Rollback(context.Context) error { return e.fail() }
func (e elsewhere) Analyze(context.Context) (Verdict, string, error) {
	return Inconclusive, "", e.fail()
}
func (e elsewhere) SetPercent(context.Context, string, float64) error { return e.fail() }
func (e elsewhere) Disable(context.Context, string) error             { return e.fail() }
func (e elsewhere) OldVersionsAlive(context.Context, string) (int, error) {
	return 0, e.fail()
}

// elsewhereMigrations is elsewhere as a MigrationPhaser (whose Rollback
// takes a name, unlike BakeController's).
type elsewhereMigrations struct{ elsewhere }

func (e elsewhereMigrations) Start(context.Context, string) error       { return e.fail() }
func (e elsewhereMigrations) Backfill(context.Context, string) error    { return e.fail() }
func (e elsewhereMigrations) SwitchReads(context.Context, string) error { return e.fail() }
func (e elsewhereMigrations) Complete(context.Context, string) error    { return e.fail() }
func (e elsewhereMigrations) Rollback(context.Context, string) error    { return e.fail() }
