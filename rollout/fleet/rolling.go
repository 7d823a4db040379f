package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/batonhq/baton/rollout"
)

// RollingOptions configure Rolling. Hosts, Version and Previous are
// required; the other zero fields mean their documented defaults.
type RollingOptions struct {
	// Hosts are the member ids to replace, in order. They are
	// configuration, the same in every member (not the live list, which
	// differs from one leader to the next): a plan must be the same
	// wherever it is built.
	Hosts []string
	// Version is the version the hosts move to, Previous the one a
	// rollback puts back (both ValidVersion).
	Version, Previous string
	// Rollout is recorded in each Desired document (the plan's id).
	Rollout string
	// Canary hosts (members of Hosts) are replaced first, in a batch of
	// their own, before the others.
	Canary []string
	// MaxUnavailable is how many of Hosts may be not ready at once, this
	// batch's included: a batch starts only when the hosts outside it
	// that are not ready (no live process, or one not reporting ready)
	// leave room for it, and batches are MaxUnavailable hosts. Zero means
	// rollout.DefaultMaxUnavailable.
	MaxUnavailable int
	// Bake is each host's bake: its new process runs with the
	// predecessor warm this long, its health checked, before it reports
	// ready. Zero means none.
	Bake time.Duration
	// HealthTimeout bounds the wait for a batch to report ready (and for
	// room to start it). Zero means rollout.DefaultHealthTimeout plus
	// Bake. HealthInterval is the time between looks; zero means 200 ms.
	HealthTimeout, HealthInterval time.Duration
	// Analyzer, if set, judges the new version after each batch (an
	// Analyze step configured by Analysis); a Fail rolls the rollout back,
	// batch by batch in reverse order.
	Analyzer rollout.Analyzer
	Analysis rollout.AnalysisOptions
}

// DefaultRollingInterval is RollingOptions.HealthInterval's default.
const DefaultRollingInterval = 200 * time.Millisecond

// Rolling builds the steps of a rolling update of the fleet's hosts, to be
// driven by l's member (DriveRollout): one replace step per batch,
// "fleet-<version>-batch-<n>", and, with an Analyzer, an analyze step
// "fleet-<version>-analysis-<n>" after each. Replacing a host writes its
// Desired state (fenced by l) and waits until its Agent reports the
// version ready, health-gated by the Observed state: an Agent that
// reports the version could not be applied fails the batch at once. A
// failed batch or analysis rolls back: each replaced batch, in reverse
// order, is asked for Previous and waited for the same way.
func Rolling(l *Lead, o RollingOptions) ([]rollout.Step, error) {
	if len(o.Hosts) == 0 {
		return nil, errors.New("fleet: Rolling: no hosts")
	}
	if err := errors.Join(ValidVersion(o.Version), ValidVersion(o.Previous)); err != nil {
		return nil, fmt.Errorf("fleet: Rolling: %w", err)
	}
	if o.MaxUnavailable < 0 {
		return nil, errors.New("fleet: Rolling: negative MaxUnavailable")
	}
	if o.MaxUnavailable == 0 {
		o.MaxUnavailable = rollout.DefaultMaxUnavailable
	}
	if o.HealthTimeout <= 0 {
		o.HealthTimeout = rollout.DefaultHealthTimeout + o.Bake
	}
	if o.HealthInterval <= 0 {
		o.HealthInterval = DefaultRollingInterval
	}
	seen := map[string]bool{}
	for _, h := range o.Hosts {
		if err := ValidKey(l.d.m.keys.Desired(h)); err != nil || strings.Contains(h, "/") || seen[h] {
			return nil, fmt.Errorf("fleet: Rolling: host %q is not a valid member id or appears twice", h)
		}
		seen[h] = true
	}
	var canary, rest []string
	for _, h := range o.Canary {
		if !seen[h] {
			return nil, fmt.Errorf("fleet: Rolling: canary host %q is not one of Hosts", h)
		}
	}
	for _, h := range o.Hosts {
		if slices.Contains(o.Canary, h) {
			canary = append(canary, h)
		} else {
			rest = append(rest, h)
		}
	}
	var batches [][]string
	if len(canary) > 0 {
		batches = append(batches, canary)
	}
	for len(rest) > 0 {
		n := min(o.MaxUnavailable, len(rest))
		batches = append(batches, rest[:n])
		rest = rest[n:]
	}
	var steps []rollout.Step
	for i, batch := range batches {
		ts := make([]rollout.Target, len(batch))
		for j, h := range batch {
			ts[j] = &hostTarget{l: l, id: h, batch: batch, o: &o}
		}
		ss, err := rollout.Rolling(ts, o.Version, o.Previous, rollout.RollingOptions{
			MaxUnavailable: len(batch), HealthTimeout: o.HealthTimeout, HealthInterval: o.HealthInterval,
		})
		if err != nil {
			return nil, err
		}
		steps = append(steps, ss[0].Named(fmt.Sprintf("fleet-%s-batch-%d", o.Version, i)))
		if o.Analyzer != nil {
			steps = append(steps, rollout.Analyze(o.Analyzer, o.Analysis).Named(fmt.Sprintf("fleet-%s-analysis-%d", o.Version, i)))
		}
	}
	return steps, nil
}

// hostTarget is one host of a fleet Rolling update, as rollout's Rolling
// step sees it.
type hostTarget struct {
	l     *Lead
	id    string
	batch []string
	o     *RollingOptions
}

func (t *hostTarget) Name() string { return t.id }

// Replace waits for room (forward only: a rollback does not wait for the
// fleet to be healthy to put the previous version back), then writes the
// host's desired state. Writing the same state again is harmless: the
// Agent acts only on a version change.
func (t *hostTarget) Replace(ctx context.Context, version string) error {
	if version == t.o.Version {
		if err := t.awaitRoom(ctx); err != nil {
			return err
		}
	}
	_, err := t.l.SetDesired(ctx, t.id, Desired{Version: version, Rollout: t.o.Rollout, Bake: t.o.Bake})
	return err
}

// awaitRoom waits until the hosts outside the batch that are not ready
// leave room for the batch under MaxUnavailable.
func (t *hostTarget) awaitRoom(ctx context.Context) error {
	deadline := time.Now().Add(t.o.HealthTimeout)
	for {
		down, err := t.unavailable(ctx)
		if err == nil && len(down)+len(t.batch) <= t.o.MaxUnavailable {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("not ready outside the batch: %v (MaxUnavailable %d, batch of %d)", down, t.o.MaxUnavailable, len(t.batch))
		}
		if !time.Now().Before(deadline) {
			return fmt.Errorf("fleet: no room to replace %s after %s: %w", t.id, t.o.HealthTimeout, err)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(t.o.HealthInterval):
		}
	}
}

// unavailable lists the hosts outside the batch with no live process
// reporting ready.
func (t *hostTarget) unavailable(ctx context.Context) ([]string, error) {
	m := t.l.d.m
	docs, _, err := m.e.List(ctx, m.keys.Observed(""))
	if err != nil {
		return nil, err
	}
	ready := map[string]bool{}
	for _, d := range docs {
		var o Observed
		if json.Unmarshal(d.Value, &o) == nil && o.State == StateReady {
			ready[d.Key[len(m.keys.Observed("")):]] = true
		}
	}
	var down []string
	for _, h := range t.o.Hosts {
		if !ready[h] && !slices.Contains(t.batch, h) {
			down = append(down, h)
		}
	}
	return down, nil
}

// Healthy is the health gate: the host's live process reports its desired
// version ready, in answer to the current Desired document. A report that
// the version could not be applied fails at once (it wraps
// rollout.ErrProcessExited, which ends the gate's wait).
func (t *hostTarget) Healthy(ctx context.Context) error {
	m := t.l.d.m
	d, err := ReadDesired(ctx, m.e, m.keys, t.id)
	if err != nil {
		return fmt.Errorf("fleet: desired state of %s: %w", t.id, err)
	}
	o, err := ReadObserved(ctx, m.e, m.keys, t.id)
	switch {
	case errors.Is(err, ErrNotFound):
		return fmt.Errorf("fleet: %s has no live process reporting", t.id)
	case err != nil:
		return fmt.Errorf("fleet: observed state of %s: %w", t.id, err)
	case o.Desired < d.Revision:
		return fmt.Errorf("fleet: %s has not answered its desired state yet (%s)", t.id, d.Version)
	case o.Error != "":
		return fmt.Errorf("fleet: %s did not apply %s: %s: %w", t.id, d.Version, o.Error, rollout.ErrProcessExited)
	case o.Version != d.Version:
		return fmt.Errorf("fleet: %s runs %s, not yet %s (%s)", t.id, o.Version, d.Version, o.State)
	case o.State != StateReady:
		return fmt.Errorf("fleet: %s runs %s but is %s", t.id, o.Version, o.State)
	}
	return nil
}
