package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
)

// commitLocked saves next with compare-and-swap on the revision and, once
// the store has it, makes it the state in memory and wakes the watchers.
// If the save fails, memory keeps the last saved state: nothing the
// transition describes has taken effect, and the caller returns the error
// (wrapping ErrNotSaved, or the runner's lost-drive error on a conflict).
func (r *Rollout) commitLocked(ctx context.Context, next *Status) error {
	if r.lost != nil {
		return r.lost
	}
	if next.Trace == nil && r.pendingTrace != nil {
		next.Trace = r.pendingTrace
	}
	next.UpdatedAt = r.clock.Now()
	data, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("rollout: encoding state: %w", err)
	}
	// A save must not be lost because the step's context was cancelled
	// (abort, timeout): the transition it records already happened.
	rev, err := r.store.Save(context.WithoutCancel(ctx), next.ID, r.st.Revision, data)
	if err != nil {
		if errors.Is(err, ErrConflict) {
			r.lost = fmt.Errorf("rollout: %q: another runner wrote the state (revision %d is stale); this runner stops: %w", next.ID, r.st.Revision, err)
			return r.lost
		}
		r.log.Warn("rollout state not saved: the transition did not happen", "rollout", next.ID, "err", err)
		return fmt.Errorf("%w: %q: %w", ErrNotSaved, next.ID, err)
	}
	next.Revision = rev
	r.st = *next
	r.pendingTrace = nil
	close(r.changed)
	r.changed = make(chan struct{})
	return nil
}

// txLocked applies f to a copy of the state and commits it. An error of f
// commits nothing.
func (r *Rollout) txLocked(ctx context.Context, f func(st *Status) error) error {
	next := r.st.clone()
	if err := f(&next); err != nil {
		return err
	}
	return r.commitLocked(ctx, &next)
}

// tx is txLocked for callers that do not hold the lock.
func (r *Rollout) tx(ctx context.Context, f func(st *Status) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.txLocked(ctx, f)
}

// decide records a decision on step i of st (or on the rollout if i < 0).
func (r *Rollout) decide(st *Status, i int, format string, args ...any) {
	r.record(st, i, Decision{Reason: fmt.Sprintf(format, args...)})
}

// record records d, stamped now, on step i of st (or on the rollout if
// i < 0).
func (r *Rollout) record(st *Status, i int, d Decision) {
	d.At = r.clock.Now()
	if i < 0 {
		st.Decisions = capDecisions(append(st.Decisions, d))
		r.log.Info("rollout decision", "rollout", st.ID, "reason", d.Reason)
		return
	}
	st.Steps[i].Decisions = capDecisions(append(st.Steps[i].Decisions, d))
	r.log.Info("rollout decision", "rollout", st.ID, "step", st.Steps[i].Name, "reason", d.Reason)
}

// MaxDecisions bounds the decisions kept per step and at the rollout level
// (a confirm hook or a long wait records one per interval, every pause and
// resume one each): beyond it the oldest are dropped, except the first
// ones, and a marker says how many. Each save rewrites the whole state, so
// without the bound its cost would grow with the rollout's age.
const MaxDecisions = 200

const keptFirstDecisions = 20

func capDecisions(ds []Decision) []Decision {
	if len(ds) <= MaxDecisions {
		return ds
	}
	head, tail := ds[:keptFirstDecisions], ds[keptFirstDecisions:]
	dropped := 0
	if m := tail[0]; m.At.IsZero() { // the marker of an earlier cap
		fmt.Sscanf(m.Reason, "(%d earlier decisions dropped)", &dropped)
		tail = tail[1:]
	}
	keep := MaxDecisions - keptFirstDecisions - 1
	dropped += len(tail) - keep
	out := make([]Decision, 0, MaxDecisions)
	out = append(out, head...)
	out = append(out, Decision{Reason: fmt.Sprintf("(%d earlier decisions dropped)", dropped)})
	return append(out, tail[len(tail)-keep:]...)
}
