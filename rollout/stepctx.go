package rollout

import (
	"context"
	"fmt"
	"time"
)

// stepCtx is what an action sees of the runner: its persisted record, the
// clock, the operator's promote and pause.
type stepCtx struct {
	r       *Rollout
	i       int
	undoing bool
}

// state returns a copy of the step's record.
func (x *stepCtx) state() StepState {
	x.r.mu.Lock()
	defer x.r.mu.Unlock()
	return x.r.st.Steps[x.i]
}

func (x *stepCtx) version() string { return x.r.opts.Version }
func (x *stepCtx) now() time.Time  { return x.r.clock.Now() }

// promoteFull reports whether the operator asked to skip waits.
func (x *stepCtx) promoteFull() bool {
	x.r.mu.Lock()
	defer x.r.mu.Unlock()
	return x.r.st.PromoteFull
}

// update changes the step's record and persists it; the change takes
// effect in memory only once saved.
func (x *stepCtx) update(ctx context.Context, f func(st *Status, s *StepState)) error {
	return x.r.tx(ctx, func(st *Status) error {
		f(st, &st.Steps[x.i])
		return nil
	})
}

// decide records a decision and persists it.
func (x *stepCtx) decide(ctx context.Context, format string, args ...any) error {
	return x.r.tx(ctx, func(st *Status) error {
		x.r.decide(st, x.i, format, args...)
		return nil
	})
}

// decideOn records a decision on st, from inside update.
func (x *stepCtx) decideOn(st *Status, format string, args ...any) {
	x.r.decide(st, x.i, format, args...)
}

// checkpoint blocks while the rollout is paused; a step made of several
// units calls it between units.
func (x *stepCtx) checkpoint(ctx context.Context) error {
	for {
		x.r.mu.Lock()
		paused, ch := x.r.st.Paused, x.r.changed
		x.r.mu.Unlock()
		if !paused {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// waitStart returns when the step's current timed wait began, recording
// now if it has not begun: a resumed wait keeps its original start.
func (x *stepCtx) waitStart(ctx context.Context) (time.Time, error) {
	x.r.mu.Lock()
	defer x.r.mu.Unlock()
	if t := x.r.st.Steps[x.i].WaitStartedAt; !t.IsZero() {
		return t, nil
	}
	now := x.r.clock.Now()
	err := x.r.txLocked(ctx, func(st *Status) error {
		st.Steps[x.i].WaitStartedAt = now
		return nil
	})
	return now, err
}

// clearWait forgets the timed wait (the next one starts afresh).
func (x *stepCtx) clearWait(ctx context.Context) error {
	return x.update(ctx, func(_ *Status, s *StepState) { s.WaitStartedAt = time.Time{} })
}

// waitUntil waits until deadline (forever if zero) or until the operator
// promotes. It reports whether the wait ended by promotion.
func (x *stepCtx) waitUntil(ctx context.Context, deadline time.Time) (promoted bool, err error) {
	x.r.mu.Lock()
	if x.r.st.PromoteFull {
		x.r.mu.Unlock()
		return true, nil
	}
	ch := make(chan struct{})
	if err := x.r.txLocked(ctx, func(st *Status) error {
		st.Steps[x.i].Waiting = true
		return nil
	}); err != nil {
		x.r.mu.Unlock()
		return false, err
	}
	x.r.promoteCh = ch
	x.r.mu.Unlock()
	defer func() {
		x.r.mu.Lock()
		if x.r.promoteCh == ch {
			x.r.promoteCh = nil
		}
		// Waiting describes this live runner only (New clears it on
		// load), so it is dropped in memory without a save of its own;
		// the step's next transition saves it.
		x.r.st.Steps[x.i].Waiting = false
		x.r.mu.Unlock()
	}()
	var timer <-chan time.Time
	if !deadline.IsZero() {
		d := deadline.Sub(x.now())
		if d <= 0 {
			return false, nil
		}
		timer = x.r.clock.After(d)
	}
	select {
	case <-timer:
		return false, nil
	case <-ch:
		return true, nil
	case <-ctx.Done():
		return false, context.Cause(ctx)
	}
}

// record records decision d and persists it.
func (x *stepCtx) record(ctx context.Context, d Decision) error {
	return x.r.tx(ctx, func(st *Status) error {
		x.r.record(st, x.i, d)
		return nil
	})
}

// analyze runs one analysis and records its verdict, with what it
// measured when the analyzer reports it.
func (x *stepCtx) analyze(ctx context.Context, a Analyzer, what string) (Verdict, string, error) {
	var (
		v      Verdict
		reason string
		m      *Measurement
		err    error
	)
	if ma, ok := a.(MeasuredAnalyzer); ok {
		v, reason, m, err = ma.AnalyzeMeasured(ctx)
	} else {
		v, reason, err = a.Analyze(ctx)
	}
	if err != nil {
		if ctx.Err() != nil {
			return Inconclusive, "", context.Cause(ctx)
		}
		v, reason = Inconclusive, fmt.Sprintf("analysis could not run: %v", err)
	}
	if reason == "" {
		reason = "no reason given"
	}
	x.r.tel.analysis(ctx, v)
	d := Decision{Reason: fmt.Sprintf("%s: %s (%s)", what, v, reason), Verdict: v.String(), Measurement: m}
	return v, reason, x.record(ctx, d)
}
