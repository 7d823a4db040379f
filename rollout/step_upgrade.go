package rollout

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Defaults of BakeOptions.
const (
	DefaultBakeWindow   = 5 * time.Minute
	DefaultBakeInterval = 30 * time.Second
)

// BakeOptions configure the bake window of a BlueGreen step. The zero value
// bakes DefaultBakeWindow with no analysis, checking every
// DefaultBakeInterval.
type BakeOptions struct {
	// Window is how long the old process stays warm while the new one
	// serves. Zero means DefaultBakeWindow.
	Window time.Duration
	// Interval is the time between analyses. Zero means DefaultBakeInterval.
	Interval time.Duration
	// Analyzers judge the new process during the window, all of them
	// every Interval (a round); one Fail rolls back to the old process.
	Analyzers []Analyzer
	// MinConclusive is how many rounds in which every analyzer was
	// conclusive (Pass) the window needs to promote: a bake with too few
	// (no traffic, too few samples) fails and hands back to the old
	// process rather than promote a version nothing judged. Zero means
	// DefaultMinConclusive; it does not apply without Analyzers.
	MinConclusive int
	// Binary is the new version's executable, passed to an Upgrader that
	// implements SpecUpgrader (a release sets it); empty means the
	// Upgrader's default.
	Binary string
}

// Upgrade is a step that replaces the binary by version to through u (a
// socket handoff). The old process calls u.Upgrade and, once it returns,
// stops driving (Run returns ErrHandedOff); the new process, built with
// Options.Version == to, takes over and continues with the next step. The
// step is irreversible unless u implements Downgrader.
func Upgrade(u Upgrader, to string) Step {
	return Step{act: &upgradeAction{u: u, to: to}}
}

// UpgradeBinary is Upgrade with the new version's executable, passed to an
// Upgrader that implements SpecUpgrader.
func UpgradeBinary(u Upgrader, to, binary string) Step {
	return Step{act: &upgradeAction{u: u, to: to, bake: BakeOptions{Binary: binary}}}
}

// BlueGreen is an Upgrade whose old process stays warm during a bake
// window: the new process analyses itself for opts.Window, then promotes
// (the old process exits) or rolls back (the old process resumes and the
// rollout continues its rollback there). u must implement BakeController.
//
// Promotion is a point of no return: it is recorded (StepState.Promoted)
// before the old process is told to exit, and from then on a rollback of
// a later step stops at this one and ends rolled back, the new version
// serving with the steps before it applied. Steps that must be undoable
// after the promotion (a canary weight, a flag) undo within the new
// process; put a SetWeight step before BlueGreen to choose the weight the
// new process starts with (see RecordWeight).
func BlueGreen(u Upgrader, to string, opts BakeOptions) Step {
	if opts.Window == 0 {
		opts.Window = DefaultBakeWindow
	}
	if opts.Interval == 0 {
		opts.Interval = DefaultBakeInterval
	}
	if opts.MinConclusive == 0 {
		opts.MinConclusive = DefaultMinConclusive
	}
	return Step{act: &upgradeAction{u: u, to: to, blueGreen: true, bake: opts}}
}

type upgradeAction struct {
	u         Upgrader
	to        string
	blueGreen bool
	bake      BakeOptions
}

func (a *upgradeAction) kind() Kind {
	if a.blueGreen {
		return KindBlueGreen
	}
	return KindUpgrade
}

func (a *upgradeAction) defaultName() string {
	if a.blueGreen {
		return "blue-green-" + a.to
	}
	return "upgrade-" + a.to
}

func (a *upgradeAction) analyzers(add func(Analyzer, int)) {
	if !a.blueGreen || a.bake.Interval <= 0 {
		return
	}
	rounds := int((a.bake.Window + a.bake.Interval - 1) / a.bake.Interval)
	for _, an := range a.bake.Analyzers {
		add(an, rounds)
	}
}

// Progress counts the conclusive bake rounds.
func (a *upgradeAction) checkProgress(p int) error {
	if !a.blueGreen && p != 0 {
		return fmt.Errorf("%d on an upgrade step, which keeps none", p)
	}
	return nil
}

func (a *upgradeAction) describe() string {
	if a.blueGreen {
		return fmt.Sprintf("blue-green upgrade to %s with a %s bake window", a.to, a.bake.Window)
	}
	return fmt.Sprintf("upgrade to %s by handoff", a.to)
}

func (a *upgradeAction) irreversible() bool {
	if a.blueGreen {
		return false
	}
	_, ok := a.u.(Downgrader)
	return !ok
}

func (a *upgradeAction) validate() error {
	if a.u == nil {
		return errors.New("nil Upgrader")
	}
	if a.to == "" {
		return errors.New("empty target version")
	}
	if a.blueGreen {
		if _, ok := a.u.(BakeController); !ok {
			return fmt.Errorf("blue-green needs an Upgrader that implements BakeController (%T does not)", a.u)
		}
		if a.bake.Window < 0 || a.bake.Interval < 0 || a.bake.MinConclusive < 0 {
			return errors.New("negative bake window, interval or MinConclusive")
		}
		for i, an := range a.bake.Analyzers {
			if an == nil {
				return fmt.Errorf("nil analyzer %d", i)
			}
		}
	}
	return nil
}

func (a *upgradeAction) run(ctx context.Context, x *stepCtx) error {
	s := x.state()
	me := x.version()
	switch {
	case me == a.to && s.From != "" && s.From != me:
		// The new side of the handoff: take the drive.
		if s.Handoff != HandoffHandedOff {
			if err := x.update(ctx, func(st *Status, s *StepState) {
				s.Handoff = HandoffHandedOff
				x.decideOn(st, "the process of version %s took over the rollout after the handoff from %s", me, s.From)
			}); err != nil {
				return err
			}
		}
		if a.blueGreen {
			return a.runBake(ctx, x)
		}
		return nil
	case me == a.to:
		return x.decide(ctx, "already running version %s: nothing to upgrade", me)
	case s.Handoff == HandoffHandedOff && me == s.From:
		return fmt.Errorf("the process of version %s took over and is gone: version %s has the drive again", s.To, me)
	case s.From != "" && me != s.From:
		return fmt.Errorf("this process runs version %s, neither side of the handoff from %s to %s", me, s.From, s.To)
	}
	if err := x.update(ctx, func(st *Status, s *StepState) {
		s.From, s.To = me, a.to
		x.decideOn(st, "handing off from version %s to %s", me, a.to)
	}); err != nil {
		return err
	}
	// Nothing is written after Upgrade returns: the new process may
	// already be writing the state, and it is the one that records the
	// handoff.
	var err error
	if su, ok := a.u.(SpecUpgrader); ok {
		spec := UpgradeSpec{Version: a.to, Binary: a.bake.Binary}
		if a.blueGreen {
			spec.Bake = a.bake.Window + a.bake.Interval
		}
		err = su.UpgradeTo(ctx, spec)
	} else {
		err = a.u.Upgrade(ctx)
	}
	if err != nil {
		return fmt.Errorf("upgrade to %s: %w", a.to, err)
	}
	return errHandedOff
}

func (a *upgradeAction) runBake(ctx context.Context, x *stepCtx) error {
	if x.state().Promoted {
		// Promotion was decided and recorded; the process died before
		// (or while) telling the old one. Promote is idempotent.
		return a.promote(ctx, x)
	}
	start, err := x.waitStart(ctx)
	if err != nil {
		return err
	}
	deadline := start.Add(a.bake.Window)
	rounds := 0
	for {
		if err := x.checkpoint(ctx); err != nil {
			return err
		}
		next := x.now().Add(a.bake.Interval)
		if next.After(deadline) {
			next = deadline
		}
		promoted, err := x.waitUntil(ctx, next)
		if err != nil {
			return err
		}
		if promoted {
			if err := x.decide(ctx, "bake window ended early on operator request"); err != nil {
				return err
			}
			break
		}
		conclusive := len(a.bake.Analyzers) > 0
		for i, an := range a.bake.Analyzers {
			v, reason, err := x.analyze(ctx, an, fmt.Sprintf("bake analysis %d", i+1))
			if err != nil {
				return err
			}
			if v == Fail {
				return &AnalysisError{Verdict: v, Reason: reason}
			}
			conclusive = conclusive && v == Pass
		}
		rounds++
		if conclusive {
			if err := x.update(ctx, func(_ *Status, s *StepState) { s.Progress++ }); err != nil {
				return err
			}
		}
		if !x.now().Before(deadline) {
			if err := a.judgeBake(ctx, x, rounds); err != nil {
				return err
			}
			break
		}
	}
	return a.promote(ctx, x)
}

// judgeBake decides at the end of the window whether the rounds were
// conclusive enough to promote.
func (a *upgradeAction) judgeBake(ctx context.Context, x *stepCtx, rounds int) error {
	if len(a.bake.Analyzers) == 0 {
		return x.decide(ctx, "bake window of %s passed (no analyzers): promoting %s", a.bake.Window, a.to)
	}
	conclusive := x.state().Progress
	rounds = max(rounds, conclusive) // a resumed bake counted its rounds anew
	tally := fmt.Sprintf("%d of %d round(s) conclusive (at least %d required)", conclusive, rounds, a.bake.MinConclusive)
	if conclusive < a.bake.MinConclusive {
		return &AnalysisError{Verdict: Inconclusive, Reason: fmt.Sprintf("bake window of %s not conclusive: %s; nothing showed that %s is healthy", a.bake.Window, tally, a.to)}
	}
	return x.decide(ctx, "bake window of %s passed with no failed analysis, %s: promoting %s", a.bake.Window, tally, a.to)
}

// promote records the promotion, a point of no return, then ends the old
// process's bake.
func (a *upgradeAction) promote(ctx context.Context, x *stepCtx) error {
	if err := x.update(ctx, func(st *Status, s *StepState) {
		if !s.Promoted {
			s.Promoted = true
			x.decideOn(st, "promoted: version %s is told to exit; from here a rollback stops at this step", s.From)
		}
	}); err != nil {
		return err
	}
	if err := a.u.(BakeController).Promote(ctx); err != nil {
		return fmt.Errorf("promote %s: %w", a.to, err)
	}
	return x.clearWait(ctx)
}

func (a *upgradeAction) undo(ctx context.Context, x *stepCtx) error {
	s := x.state()
	me := x.version()
	switch {
	case s.From == "":
		return x.decide(ctx, "nothing to undo: no handoff was started")
	case me == s.From:
		return x.decide(ctx, "version %s serves again", me)
	case me != s.To:
		return fmt.Errorf("this process runs version %s, neither side of the handoff from %s to %s", me, s.From, s.To)
	}
	if err := x.decide(ctx, "handing back from version %s to %s", me, s.From); err != nil {
		return err
	}
	if a.blueGreen {
		if err := a.u.(BakeController).Rollback(ctx); err != nil {
			return fmt.Errorf("blue-green rollback to %s: %w", s.From, err)
		}
		return errHandedOff
	}
	d, ok := a.u.(Downgrader)
	if !ok {
		return fmt.Errorf("%T cannot downgrade", a.u)
	}
	if err := d.Downgrade(ctx); err != nil {
		return fmt.Errorf("downgrade to %s: %w", s.From, err)
	}
	return errHandedOff
}
