package canary

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"
)

// ControllerOptions configures NewController. Splitter and Steps are
// required; other zero fields mean the defaults.
type ControllerOptions struct {
	// Splitter is the splitter whose weight the controller drives and
	// whose metrics it analyses.
	Splitter *Splitter
	// Steps are the stages, in order; their weights must not decrease.
	// After the last step passes, the weight goes to 100%.
	Steps []Step
	// Analysis configures the checks. A zero Looks is set to the number
	// of checks the steps plan for (the sum of MinDuration/Interval).
	Analysis AnalysisOptions
	// Interval is how often Run checks; zero means DefaultInterval.
	Interval time.Duration
	// OnDeadline is what happens to a step still without a Pass at its
	// MaxDuration; the zero value is Hold.
	OnDeadline DeadlineAction
	// Clock tells the time of step starts and checks; nil means the
	// splitter's clock.
	Clock Clock
	// OnEvent, when set, receives every transition, synchronously and in
	// order, after the change is in force. It may read Status but must not
	// call Promote, Abort, Pause, Resume, Start or Evaluate (they wait for
	// it to return).
	OnEvent func(Event)
	// Logger receives transitions; nil discards.
	Logger *slog.Logger
}

// Status is a snapshot of a rollout. The zero value is a pending rollout
// with no data.
type Status struct {
	Phase Phase
	// Step is the index of the current step, -1 before Start.
	Step  int
	Steps int
	// Weight is the canary weight in force, in basis points.
	Weight      uint32
	StepStarted time.Time
	// StepRequests is the number of canary requests served in this step.
	StepRequests uint64
	// Stable and Canary are the figures at the current weight now.
	Stable, Canary Figures
	// Last is the latest analysis (zero before the first).
	Last Report
	// Reason says why the rollout is where it is: the abort reason, the
	// promotion, or the latest verdict.
	Reason string
}

// ErrAborted is wrapped by the error Run returns when the rollout was
// rolled back.
var ErrAborted = errors.New("canary: rollout aborted")

// AbortError carries the reason of an abort; Run returns it. The zero value
// has no reason.
type AbortError struct {
	Reason string
	Manual bool
}

// Error implements error.
func (e *AbortError) Error() string { return "canary: rollout aborted: " + e.Reason }

// Unwrap returns ErrAborted.
func (e *AbortError) Unwrap() error { return ErrAborted }

// Controller moves a splitter's weight through steps, promoting when the
// analysis passes and aborting (weight 0 at once) when it fails: the
// progression engine for a service that uses canary without the rollout
// package. Run drives it on a timer; Evaluate does one check, for callers
// with their own loop or a simulated clock. Use NewController; the zero value is not
// usable. Its methods are safe for concurrent use.
type Controller struct {
	s        *Splitter
	steps    []Step
	analyzer *Analyzer
	interval time.Duration
	onDead   DeadlineAction
	clock    Clock
	onEvent  func(Event)
	log      *slog.Logger

	op sync.Mutex // serialises transitions and event delivery

	mu           sync.Mutex // guards the fields below, for Status
	phase        Phase
	step         int
	stepStarted  time.Time
	deadlineFrom time.Time // step start or last Resume: MaxDuration counts from here
	stepBaseline uint64    // canary total at step start
	last         Report
	reason       string
	manualAbort  bool
	done         chan struct{} // closed when finished
}

// NewController returns a pending controller; Start or Run begins.
func NewController(o ControllerOptions) (*Controller, error) {
	if o.Splitter == nil {
		return nil, optErr("Splitter", "a splitter is required")
	}
	if len(o.Steps) == 0 {
		return nil, optErr("Steps", "at least one step is required")
	}
	if o.Interval < 0 {
		return nil, optErr("Interval", "must not be negative, got %s", o.Interval)
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	steps := make([]Step, len(o.Steps))
	looks := 0
	for i, st := range o.Steps {
		field := "Steps[" + strconv.Itoa(i) + "]"
		if st.Weight > MaxWeight {
			return nil, optErr(field+".Weight", "%d basis points is above %d (100%%)", st.Weight, MaxWeight)
		}
		if st.Weight == MaxWeight && !st.SkipAnalysis {
			return nil, optErr(field+".Weight", "a step at 100%% leaves no stable traffic to compare with, so it could never pass: "+
				"drop it (the weight goes to 100%% after the last step passes) or set SkipAnalysis")
		}
		if i > 0 && st.Weight < steps[i-1].Weight {
			return nil, optErr(field+".Weight", "%s is below the previous step's %s: weights must not decrease",
				formatWeight(st.Weight), formatWeight(steps[i-1].Weight))
		}
		if st.MinDuration < 0 {
			return nil, optErr(field+".MinDuration", "must not be negative, got %s", st.MinDuration)
		}
		if st.MinDuration == 0 {
			st.MinDuration = DefaultStepDuration
		}
		if st.MaxDuration < 0 {
			return nil, optErr(field+".MaxDuration", "must not be negative, got %s", st.MaxDuration)
		}
		if st.MaxDuration == 0 {
			st.MaxDuration = DefaultMaxDurationFactor * st.MinDuration
		}
		if st.MaxDuration < st.MinDuration {
			return nil, optErr(field+".MaxDuration", "%s is shorter than MinDuration %s: the step could never pass", st.MaxDuration, st.MinDuration)
		}
		steps[i] = st
		looks += int((st.MinDuration + o.Interval - 1) / o.Interval)
	}
	ao := o.Analysis
	if ao.Looks == 0 {
		ao.Looks = max(looks, 1)
	}
	an, err := NewAnalyzer(ao)
	if err != nil {
		var oe *OptionsError
		if errors.As(err, &oe) {
			oe.Field = "Analysis." + oe.Field
		}
		return nil, err
	}
	c := &Controller{
		s:        o.Splitter,
		steps:    steps,
		analyzer: an,
		interval: o.Interval,
		onDead:   o.OnDeadline,
		clock:    o.Clock,
		onEvent:  o.OnEvent,
		log:      o.Logger,
		step:     -1,
		done:     make(chan struct{}),
	}
	if c.clock == nil {
		c.clock = o.Splitter.clock
	}
	if c.log == nil {
		c.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c, nil
}

// Start sets the first step's weight and begins the rollout. It returns
// ErrFinished if the rollout is over and does nothing if it already started.
func (c *Controller) Start() error {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	switch {
	case c.phase.Done():
		c.mu.Unlock()
		return ErrFinished
	case c.phase != PhasePending:
		c.mu.Unlock()
		return nil
	}
	c.mu.Unlock()
	c.analyzer.Reset()
	ev := c.enterStep(0, PhaseRunning, EventStarted, "rollout started at "+formatWeight(c.steps[0].Weight), false)
	c.emit(ev)
	return nil
}

// enterStep moves to step i; the caller holds op.
func (c *Controller) enterStep(i int, to Phase, kind EventKind, reason string, manual bool) Event {
	now := c.clock.Now()
	w := c.steps[i].Weight
	_ = c.s.SetWeight(w) // validated in NewController
	base, _ := c.s.metrics.Totals(Canary)
	c.mu.Lock()
	from := c.phase
	c.phase, c.step, c.stepStarted, c.deadlineFrom, c.stepBaseline, c.reason = to, i, now, now, base, reason
	c.mu.Unlock()
	return Event{Kind: kind, At: now, From: from, To: to, Step: i, Weight: w, Reason: reason, Manual: manual}
}

func (c *Controller) finish(to Phase, kind EventKind, reason string, manual bool) Event {
	now := c.clock.Now()
	var w uint32
	if to == PhaseRolledBack {
		c.s.Halt()
	} else {
		w = MaxWeight
		_ = c.s.SetWeight(w)
	}
	c.mu.Lock()
	from := c.phase
	c.phase, c.reason, c.manualAbort = to, reason, manual && to == PhaseRolledBack
	step := c.step
	close(c.done)
	c.mu.Unlock()
	return Event{Kind: kind, At: now, From: from, To: to, Step: step, Weight: w, Reason: reason, Manual: manual}
}

func (c *Controller) emit(ev Event) {
	level := slog.LevelInfo
	if ev.Kind == EventAborted {
		level = slog.LevelWarn
	}
	c.log.Log(context.Background(), level, "canary: "+ev.Kind.String(),
		"step", ev.Step, "weight", formatWeight(ev.Weight), "reason", ev.Reason, "manual", ev.Manual)
	if c.onEvent != nil {
		c.onEvent(ev)
	}
}

// Analyze runs one analysis over the current window and returns it, without
// acting on it (it does spend a look of the alpha budget when a test runs).
// It is the hook for a caller that decides by itself; Evaluate acts.
func (c *Controller) Analyze(ctx context.Context) (Report, error) {
	if err := ctx.Err(); err != nil {
		return Report{}, err
	}
	c.mu.Lock()
	last := c.step+1 >= len(c.steps)
	c.mu.Unlock()
	return c.analyzer.analyze(c.s.metrics.currentAt(c.clock.Now()), last), nil
}

// Evaluate runs one check and acts on it: a Fail aborts at once (weight 0,
// segments off); a Pass, once the step's MinDuration and MinSamples are
// met, moves to the next step or, after the last, promotes. Inconclusive
// never aborts and never promotes; past the step's MaxDuration the
// controller holds (or, with FailInconclusive, aborts). While paused it
// checks and may abort, but does not promote. It returns ErrNotStarted before Start and ErrFinished (with the
// final report) once the rollout is over.
func (c *Controller) Evaluate(ctx context.Context) (Report, error) {
	if err := ctx.Err(); err != nil {
		return Report{}, err
	}
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	state, step, started, base, from := c.phase, c.step, c.stepStarted, c.stepBaseline, c.deadlineFrom
	c.mu.Unlock()
	switch {
	case state == PhasePending:
		return Report{}, ErrNotStarted
	case state.Done():
		return c.lastReport(), ErrFinished
	}
	now := c.clock.Now()
	r := c.analyzer.analyze(c.s.metrics.currentAt(now), step+1 >= len(c.steps))
	c.mu.Lock()
	c.last = r
	c.mu.Unlock()
	if r.Verdict == Fail {
		c.emit(c.finish(PhaseRolledBack, EventAborted, r.Reason, false))
		return r, nil
	}
	if state == PhasePaused {
		return r, nil
	}
	st := c.steps[step]
	total, _ := c.s.metrics.Totals(Canary)
	switch {
	case now.Sub(started) < st.MinDuration:
	case total-base < st.MinSamples && now.Sub(from) < st.MaxDuration:
	case !st.SkipAnalysis && r.Verdict != Pass || total-base < st.MinSamples:
		if now.Sub(from) < st.MaxDuration {
			break
		}
		// No evidence by the deadline: never promote silently.
		why := fmt.Sprintf("no passing analysis after %s at %s (%d canary requests this step): %s",
			now.Sub(from).Round(time.Second), formatWeight(st.Weight), total-base, r.Reason)
		if c.onDead == FailInconclusive {
			c.emit(c.finish(PhaseRolledBack, EventAborted, why, false))
			break
		}
		c.mu.Lock()
		c.phase, c.reason = PhasePaused, "held: "+why+"; Promote, Resume or Abort"
		ev := Event{Kind: EventPaused, At: now, From: state, To: PhasePaused, Step: step, Weight: c.s.Weight(), Reason: c.reason}
		c.mu.Unlock()
		c.emit(ev)
	case step+1 < len(c.steps):
		next := c.steps[step+1].Weight
		c.emit(c.enterStep(step+1, PhaseRunning, EventStep,
			fmt.Sprintf("step %d passed after %s; canary weight %s -> %s", step+1, now.Sub(started).Round(time.Second),
				formatWeight(st.Weight), formatWeight(next)), false))
	default:
		c.emit(c.finish(PhaseSucceeded, EventPromoted,
			fmt.Sprintf("all %d steps passed; canary promoted to 100%%", len(c.steps)), false))
	}
	return r, nil
}

func (c *Controller) lastReport() Report {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.last
}

// Promote moves to the next step now, skipping the rest of the current one,
// or promotes to 100% from the last step. It starts a pending rollout at its
// first step. It returns ErrFinished once the rollout is over.
func (c *Controller) Promote() error {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	state, step := c.phase, c.step
	c.mu.Unlock()
	switch {
	case state.Done():
		return ErrFinished
	case state == PhasePending:
		c.analyzer.Reset()
		c.emit(c.enterStep(0, PhaseRunning, EventStarted, "rollout started by hand at "+formatWeight(c.steps[0].Weight), true))
	case step+1 < len(c.steps):
		to := state // a paused rollout stays paused at the new step
		c.emit(c.enterStep(step+1, to, EventStep, "promoted by hand to "+formatWeight(c.steps[step+1].Weight), true))
	default:
		c.emit(c.finish(PhaseSucceeded, EventPromoted, "promoted by hand to 100%", true))
	}
	return nil
}

// Abort rolls back at once: weight 0, segments off. The reason is kept in
// the status. It returns ErrFinished once the rollout is over.
func (c *Controller) Abort(reason string) error {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	state := c.phase
	c.mu.Unlock()
	if state.Done() {
		return ErrFinished
	}
	if reason == "" {
		reason = "aborted by hand"
	}
	c.emit(c.finish(PhaseRolledBack, EventAborted, reason, true))
	return nil
}

// Pause stops automatic promotion; checks go on and a failure still
// aborts. It returns ErrNotStarted or ErrFinished when there is nothing to
// pause, and nil if already paused.
func (c *Controller) Pause(reason string) error {
	return c.setPaused(true, reason)
}

// Resume lets automatic promotion go on; the step's MinDuration still counts
// from the step's start.
func (c *Controller) Resume() error {
	return c.setPaused(false, "resumed")
}

func (c *Controller) setPaused(pause bool, reason string) error {
	c.op.Lock()
	defer c.op.Unlock()
	c.mu.Lock()
	from := c.phase
	switch {
	case from == PhasePending:
		c.mu.Unlock()
		return ErrNotStarted
	case from.Done():
		c.mu.Unlock()
		return ErrFinished
	case (from == PhasePaused) == pause:
		c.mu.Unlock()
		return nil
	}
	to, kind := PhaseRunning, EventResumed
	if pause {
		to, kind = PhasePaused, EventPaused
		if reason == "" {
			reason = "paused by hand"
		}
	}
	c.phase, c.reason = to, reason
	if !pause {
		c.deadlineFrom = c.clock.Now()
	}
	ev := Event{Kind: kind, At: c.clock.Now(), From: from, To: to, Step: c.step, Weight: c.s.Weight(), Reason: reason, Manual: true}
	c.mu.Unlock()
	c.emit(ev)
	return nil
}

// Status returns a snapshot: state, step, weight, the figures of both
// variants over the window now, and the latest verdict with its reason.
func (c *Controller) Status() Status {
	w := c.s.metrics.currentAt(c.clock.Now())
	total, _ := c.s.metrics.Totals(Canary)
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{
		Phase:        c.phase,
		Step:         c.step,
		Steps:        len(c.steps),
		Weight:       c.s.Weight(),
		StepStarted:  c.stepStarted,
		StepRequests: total - c.stepBaseline,
		Stable:       figuresOf(w.Of(Stable)),
		Canary:       figuresOf(w.Of(Canary)),
		Last:         c.last,
		Reason:       c.reason,
	}
	st.Last.Checks = append([]Check(nil), c.last.Checks...)
	if c.phase == PhaseRunning && c.last.Reason != "" {
		st.Reason = c.last.Verdict.String() + ": " + c.last.Reason
	}
	if c.phase == PhasePending {
		st.StepRequests = 0
	}
	return st
}

// Done is closed when the rollout has succeeded or been rolled back.
func (c *Controller) Done() <-chan struct{} { return c.done }

// Run starts the rollout if pending and checks it every Interval until it
// is promoted (nil), aborted (an *AbortError) or ctx ends (ctx.Err(); the
// weight stays where it is). Run uses a real ticker: simulations with a
// manual clock call Evaluate instead.
func (c *Controller) Run(ctx context.Context) error {
	if err := c.Start(); err != nil && !errors.Is(err, ErrFinished) {
		return err
	}
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		if err := c.result(); err != errNotDone {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.done:
		case <-t.C:
			if _, err := c.Evaluate(ctx); err != nil && !errors.Is(err, ErrFinished) {
				return err
			}
		}
	}
}

var errNotDone = errors.New("not done")

func (c *Controller) result() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.phase {
	case PhaseSucceeded:
		return nil
	case PhaseRolledBack:
		return &AbortError{Reason: c.reason, Manual: c.manualAbort}
	}
	return errNotDone
}
