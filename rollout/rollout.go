package rollout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// DefaultStateDir is the directory of the FileStore used when Options.Store
// is nil, relative to the working directory.
const DefaultStateDir = ".baton-rollout"

// Options configure a Rollout. The zero value is usable for plans without
// handoff steps: state in a FileStore under DefaultStateDir, the system
// clock, no logs, no-op telemetry.
type Options struct {
	// Store persists the state after every transition. Nil means a
	// FileStore in DefaultStateDir.
	Store Store
	// Version is the version of the running binary. Required when the plan
	// has upgrade or blue-green steps: it is how a process that loads the
	// state knows whether it is the old or the new side of a handoff.
	Version string
	// Clock drives pauses, bake windows and intervals. Nil means the
	// system clock.
	Clock Clock
	// Logger receives one event per transition. Nil discards.
	Logger *slog.Logger
	// TracerProvider gets one trace per rollout, continued across Runs,
	// restarts and handoffs (Status.Trace), with a span per Run and per
	// step. Nil means no-op.
	TracerProvider trace.TracerProvider
	// MeterProvider gets step outcome counters and durations. Nil means
	// no-op.
	MeterProvider metric.MeterProvider
}

// Rollout drives one Plan. Create it with New in every process that may
// drive the plan, call Run, and give it to NewHandler for the admin API.
// Commands (Promote, Abort, ...) may be called from any goroutine; they are
// serialized with each other and with the runner's transitions, and each is
// persisted before it takes effect. The zero value is not usable: use New.
type Rollout struct {
	plan  Plan
	opts  Options
	store Store
	clock Clock
	log   *slog.Logger
	tel   *telemetry

	// mu guards everything below and serializes saves. st is always the
	// last state the store accepted: a transition is built on a copy and
	// becomes st only once saved (commitLocked), so a failed save changes
	// nothing in memory either.
	mu           sync.Mutex
	st           Status
	pendingTrace *TraceRef // saved with the next transition
	running      bool
	stepCancel   context.CancelCauseFunc
	promoteCh    chan struct{} // non-nil while a step waits for promotion
	changed      chan struct{} // closed and replaced on every transition
	lost         error         // set when a save conflicted: another runner drives
}

// errAborted is the cancel cause of a step interrupted by Abort.
var errAborted = errors.New("aborted by operator")

// errHandedOff is returned by an action that handed the drive away.
var errHandedOff = errors.New("handed off")

// New loads the state of plan.ID from the store, or creates it. It fails
// with ErrPlanChanged if the stored state belongs to a plan with other
// step names or kinds, and with an error wrapping ErrInvalidState if the
// stored document is not one the runner wrote (unknown fields or values,
// numbers out of range).
func New(ctx context.Context, plan Plan, opts Options) (*Rollout, error) {
	p, err := plan.normalize()
	if err != nil {
		return nil, err
	}
	for i, s := range p.Steps {
		if k := s.act.kind(); (k == KindUpgrade || k == KindBlueGreen) && opts.Version == "" {
			return nil, &PlanError{Step: i, Name: s.Name, Reason: "Options.Version is required for upgrade steps"}
		}
	}
	p.planLooks()
	r := &Rollout{plan: p, opts: opts, store: opts.Store, clock: opts.Clock, log: opts.Logger, changed: make(chan struct{})}
	if r.store == nil {
		fs, err := NewFileStore(FileStoreOptions{Dir: DefaultStateDir})
		if err != nil {
			return nil, err
		}
		r.store = fs
	}
	if r.clock == nil {
		r.clock = SystemClock
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.tel = newTelemetry(opts.TracerProvider, opts.MeterProvider)
	data, rev, err := r.store.Load(ctx, p.ID)
	switch {
	case errors.Is(err, ErrNotFound):
		next := Status{ID: p.ID, PlanHash: p.hash(), Current: -1, Release: p.Release}
		for _, s := range p.Steps {
			next.Steps = append(next.Steps, StepState{
				Name: s.Name, Kind: s.act.kind(), Description: s.act.describe(),
				Irreversible: s.act.irreversible(), Status: StepPending,
			})
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		if err := r.commitLocked(ctx, &next); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("rollout: loading %q: %w", p.ID, err)
	default:
		st, err := decodeStatus(data, p)
		if err != nil {
			return nil, err
		}
		st.Revision = rev
		r.st = st
	}
	return r, nil
}

// ID returns the rollout id.
func (r *Rollout) ID() string { return r.plan.ID }

// Status returns a copy of the current state.
func (r *Rollout) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st.clone()
}

// Changed returns a channel that is closed at the next persisted
// transition or command: watch it, then read Status.
func (r *Rollout) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// Restore applies to w what the rollout recorded that lives only in a
// process's memory: the canary weight it last set (Status.Weight). A
// process of the release's version calls it before it serves, after an
// upgrade, a crash or a restart, because the set-weight steps recorded as
// done are not run again. It does nothing when the rollout set no weight.
func (r *Rollout) Restore(ctx context.Context, w WeightSetter) error {
	r.mu.Lock()
	bp := r.st.Weight
	r.mu.Unlock()
	if bp == nil || w == nil {
		return nil
	}
	if err := w.SetWeight(ctx, *bp); err != nil {
		return fmt.Errorf("rollout: %q: restoring canary weight %s: %w", r.plan.ID, pct(*bp), err)
	}
	r.log.Info("rollout canary weight restored", "rollout", r.plan.ID, "weight", *bp)
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}
