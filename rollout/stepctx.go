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

// update changes the step's record and persists it.
func (x *stepCtx) update(ctx context.Context, f func(s *StepState)) error {
	x.r.mu.Lock()
	defer x.r.mu.Unlock()
	f(&x.r.st.Steps[x.i])
	return x.r.saveLocked(ctx)
}

// decide records a decision and persists it.
func (x *stepCtx) decide(ctx context.Context, format string, args ...any) error {
	x.r.mu.Lock()
	defer x.r.mu.Unlock()
	x.r.decideLocked(x.i, format, args...)
	return x.r.saveLocked(ctx)
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
	s := &x.r.st.Steps[x.i]
	if s.WaitStartedAt.IsZero() {
		s.WaitStartedAt = x.r.clock.Now()
		if err := x.r.saveLocked(ctx); err != nil {
			return time.Time{}, err
		}
	}
	return s.WaitStartedAt, nil
}

// clearWait forgets the timed wait (the next one starts afresh).
func (x *stepCtx) clearWait(ctx context.Context) error {
	return x.update(ctx, func(s *StepState) { s.WaitStartedAt = time.Time{} })
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
	x.r.promoteCh = ch
	s := &x.r.st.Steps[x.i]
	s.Waiting = true
	if err := x.r.saveLocked(ctx); err != nil {
		x.r.promoteCh = nil
		x.r.mu.Unlock()
		return false, err
	}
	x.r.mu.Unlock()
	defer func() {
		x.r.mu.Lock()
		if x.r.promoteCh == ch {
			x.r.promoteCh = nil
		}
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

// analyze runs one analysis and records its verdict.
func (x *stepCtx) analyze(ctx context.Context, a Analyzer, what string) (Verdict, string, error) {
	v, reason, err := a.Analyze(ctx)
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
	return v, reason, x.decide(ctx, "%s: %s (%s)", what, v, reason)
}
