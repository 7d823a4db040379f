package rollouttest

import (
	"context"
	"fmt"
	"sync"

	"github.com/batonhq/baton/rollout"
)

// Recorder records the calls made to the fakes that share it, in order, as
// short strings ("weight 500", "flag f 10", "migration m complete"). Before,
// if set, is called before each call is recorded: return an error to make
// the call fail, or block to hold the runner inside a step. The zero value
// records with no Before.
type Recorder struct {
	Before func(ctx context.Context, call string) error

	mu    sync.Mutex
	calls []string
}

func (r *Recorder) call(ctx context.Context, format string, args ...any) error {
	c := fmt.Sprintf(format, args...)
	r.mu.Lock()
	before := r.Before
	r.mu.Unlock()
	if before != nil {
		if err := before(ctx, c); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.calls = append(r.calls, c)
	r.mu.Unlock()
	return nil
}

// Record records call c like the fakes do (Before applies), for hooks
// and other funcs a test writes itself.
func (r *Recorder) Record(ctx context.Context, c string) error { return r.call(ctx, "%s", c) }

// SetBefore replaces Before safely while fakes are in use.
func (r *Recorder) SetBefore(f func(ctx context.Context, call string) error) {
	r.mu.Lock()
	r.Before = f
	r.mu.Unlock()
}

// Calls returns the recorded calls.
func (r *Recorder) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// Count returns how many recorded calls equal c.
func (r *Recorder) Count(c string) int {
	n := 0
	for _, x := range r.Calls() {
		if x == c {
			n++
		}
	}
	return n
}

// Upgrader is a fake rollout.Upgrader, BakeController and Downgrader that
// records "upgrade <To>", "bake-promote", "bake-rollback", "downgrade".
type Upgrader struct {
	*Recorder
	To string
}

// Upgrade implements rollout.Upgrader.
func (u *Upgrader) Upgrade(ctx context.Context) error { return u.call(ctx, "upgrade %s", u.To) }

// Promote implements rollout.BakeController.
func (u *Upgrader) Promote(ctx context.Context) error { return u.call(ctx, "bake-promote") }

// Rollback implements rollout.BakeController.
func (u *Upgrader) Rollback(ctx context.Context) error { return u.call(ctx, "bake-rollback") }

// Downgrade implements rollout.Downgrader.
func (u *Upgrader) Downgrade(ctx context.Context) error { return u.call(ctx, "downgrade") }

// OneWayUpgrader is a fake Upgrader with no way back (no Downgrader).
type OneWayUpgrader struct {
	*Recorder
	To string
}

// Upgrade implements rollout.Upgrader.
func (u *OneWayUpgrader) Upgrade(ctx context.Context) error { return u.call(ctx, "upgrade %s", u.To) }

// Weights is a fake rollout.WeightSetter recording "weight <bp>".
type Weights struct {
	*Recorder
	mu sync.Mutex
	bp uint32
}

// SetWeight implements rollout.WeightSetter.
func (w *Weights) SetWeight(ctx context.Context, bp uint32) error {
	if err := w.call(ctx, "weight %d", bp); err != nil {
		return err
	}
	w.mu.Lock()
	w.bp = bp
	w.mu.Unlock()
	return nil
}

// Weight returns the last weight set.
func (w *Weights) Weight() uint32 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.bp
}

// Flags is a fake rollout.FlagRamper recording "flag <key> <pct>" and
// "flag <key> off".
type Flags struct {
	*Recorder
	mu  sync.Mutex
	pct map[string]float64
}

// SetPercent implements rollout.FlagRamper.
func (f *Flags) SetPercent(ctx context.Context, key string, pct float64) error {
	if err := f.call(ctx, "flag %s %v", key, pct); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pct == nil {
		f.pct = map[string]float64{}
	}
	f.pct[key] = pct
	return nil
}

// Disable implements rollout.FlagRamper.
func (f *Flags) Disable(ctx context.Context, key string) error {
	if err := f.call(ctx, "flag %s off", key); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pct, key)
	return nil
}

// Percentage returns the flag's percentage and whether it is on.
func (f *Flags) Percentage(key string) (float64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pct[key]
	return p, ok
}

// Migrator is a fake rollout.MigrationPhaser recording
// "migration <name> <phase>".
type Migrator struct{ *Recorder }

// Start implements rollout.MigrationPhaser.
func (m *Migrator) Start(ctx context.Context, name string) error {
	return m.call(ctx, "migration %s start", name)
}

// Backfill implements rollout.MigrationPhaser.
func (m *Migrator) Backfill(ctx context.Context, name string) error {
	return m.call(ctx, "migration %s backfill", name)
}

// SwitchReads implements rollout.MigrationPhaser.
func (m *Migrator) SwitchReads(ctx context.Context, name string) error {
	return m.call(ctx, "migration %s switch-reads", name)
}

// Complete implements rollout.MigrationPhaser.
func (m *Migrator) Complete(ctx context.Context, name string) error {
	return m.call(ctx, "migration %s complete", name)
}

// Rollback implements rollout.MigrationPhaser.
func (m *Migrator) Rollback(ctx context.Context, name string) error {
	return m.call(ctx, "migration %s rollback", name)
}

// Analyzer is a fake rollout.Analyzer that returns Verdicts in turn (the
// last one repeats; none means Pass) and records "analyze".
type Analyzer struct {
	*Recorder
	mu       sync.Mutex
	Verdicts []rollout.Verdict
	n        int
}

// Analyze implements rollout.Analyzer.
func (a *Analyzer) Analyze(ctx context.Context) (rollout.Verdict, string, error) {
	if err := a.call(ctx, "analyze"); err != nil {
		return rollout.Inconclusive, "", err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	v := rollout.Pass
	if len(a.Verdicts) > 0 {
		v = a.Verdicts[min(a.n, len(a.Verdicts)-1)]
	}
	a.n++
	return v, fmt.Sprintf("scripted verdict %d", a.n), nil
}

// SetVerdicts replaces the scripted verdicts and restarts them.
func (a *Analyzer) SetVerdicts(v ...rollout.Verdict) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.Verdicts, a.n = v, 0
}

// Registry is a fake rollout.InstanceRegistry whose answer the test sets;
// it records "registry".
type Registry struct {
	*Recorder
	mu  sync.Mutex
	old int
}

// SetOld sets how many old instances are alive.
func (g *Registry) SetOld(n int) {
	g.mu.Lock()
	g.old = n
	g.mu.Unlock()
}

// OldVersionsAlive implements rollout.InstanceRegistry.
func (g *Registry) OldVersionsAlive(ctx context.Context, current string) (int, error) {
	if err := g.call(ctx, "registry"); err != nil {
		return 0, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.old, nil
}

// Target is a fake rollout.Target recording "replace <name> <version>".
type Target struct {
	*Recorder
	ID string
	mu sync.Mutex
	v  string
	// Unhealthy, if set, makes Healthy fail while it returns true.
	Unhealthy func(version string) bool
}

// Name implements rollout.Target.
func (t *Target) Name() string { return t.ID }

// Replace implements rollout.Target.
func (t *Target) Replace(ctx context.Context, version string) error {
	if err := t.call(ctx, "replace %s %s", t.ID, version); err != nil {
		return err
	}
	t.mu.Lock()
	t.v = version
	t.mu.Unlock()
	return nil
}

// Version returns the version the target runs.
func (t *Target) Version() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.v
}

// Healthy implements rollout.Target.
func (t *Target) Healthy(ctx context.Context) error {
	t.mu.Lock()
	v := t.v
	t.mu.Unlock()
	if t.Unhealthy != nil && t.Unhealthy(v) {
		return fmt.Errorf("%s on %s is unhealthy", t.ID, v)
	}
	return nil
}

// Surger is a fake rollout.Surger recording "surge-start <version>" and
// "surge-stop <name>".
type Surger struct {
	*Recorder
	mu sync.Mutex
	n  int
}

// StartExtra implements rollout.Surger.
func (s *Surger) StartExtra(ctx context.Context, version string) (rollout.Target, error) {
	if err := s.call(ctx, "surge-start %s", version); err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.n++
	name := fmt.Sprintf("extra-%d", s.n)
	s.mu.Unlock()
	return &Target{Recorder: &Recorder{}, ID: name, v: version}, nil
}

// StopExtra implements rollout.Surger.
func (s *Surger) StopExtra(ctx context.Context, t rollout.Target) error {
	return s.call(ctx, "surge-stop %s", t.Name())
}
