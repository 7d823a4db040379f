package canary

import "time"

// The vocabulary of a progressive rollout: the steps a Controller walks,
// the phases it goes through and the events it reports.

// Step is one stage of a progressive rollout. The zero value is a step at
// weight 0 that lasts at least DefaultStepDuration and needs a passing
// analysis.
type Step struct {
	// Weight is the canary weight during the step, in basis points.
	Weight uint32
	// MinDuration is the least time spent at this weight before moving
	// on; zero means DefaultStepDuration.
	MinDuration time.Duration
	// MaxDuration is the longest the step may wait for a Pass (positive
	// evidence that the canary is no worse than stable) before
	// ControllerOptions.OnDeadline applies; zero means
	// DefaultMaxDurationFactor times MinDuration. It counts from the
	// step's start, or from the last Resume.
	MaxDuration time.Duration
	// MinSamples is the least number of canary requests served during
	// the step before moving on; zero means no minimum.
	MinSamples uint64
	// SkipAnalysis moves on after MinDuration and MinSamples without a
	// passing analysis. A failing analysis still aborts.
	SkipAnalysis bool
}

// DefaultStepDuration is a step's minimum duration when Step.MinDuration is
// zero.
const DefaultStepDuration = 5 * time.Minute

// DefaultMaxDurationFactor times MinDuration is a step's deadline when
// Step.MaxDuration is zero.
const DefaultMaxDurationFactor = 4

// DefaultInterval is how often Run checks the canary.
const DefaultInterval = 10 * time.Second

// DeadlineAction is what a Controller does with a step still inconclusive
// at its MaxDuration. The zero value is Hold.
type DeadlineAction uint8

const (
	// Hold pauses the rollout at the step's weight (PhasePaused, with an
	// EventPaused that says why): checks go on and a failure still
	// aborts, but only Promote or Resume moves the weight up, and Abort
	// rolls back. Nothing is promoted without evidence.
	Hold DeadlineAction = iota
	// FailInconclusive aborts the rollout as if the analysis had failed.
	FailInconclusive
)

// Phase is where a Controller's rollout is; the names are rollout.Phase's
// where the meaning is the same. The zero value is PhasePending.
type Phase string

// Phases of a canary rollout.
const (
	// PhasePending: not started; the splitter's weight is untouched.
	PhasePending Phase = ""
	// PhaseRunning: checking, and promoting step by step.
	PhaseRunning Phase = "running"
	// PhasePaused: checking (and aborting on failure) but not promoting,
	// after Pause or a Hold at a step's deadline.
	PhasePaused Phase = "paused"
	// PhaseSucceeded: every step passed; the canary takes all traffic.
	PhaseSucceeded Phase = "succeeded"
	// PhaseRolledBack: aborted; the canary takes no traffic.
	PhaseRolledBack Phase = "rolled-back"
)

// String names the phase ("pending" for PhasePending).
func (p Phase) String() string {
	if p == PhasePending {
		return "pending"
	}
	return string(p)
}

// Done reports whether the rollout is over (succeeded or rolled back).
func (p Phase) Done() bool { return p == PhaseSucceeded || p == PhaseRolledBack }

// EventKind says what an Event records. The zero value is EventStarted.
type EventKind uint8

// Event kinds.
const (
	EventStarted  EventKind = iota // the first step's weight is set
	EventStep                      // moved on to the next step
	EventPaused                    // promotion paused (by hand, or held at a deadline)
	EventResumed                   // promotion resumed
	EventPromoted                  // every step passed: weight 100%
	EventAborted                   // rolled back: weight 0
)

// String names the kind.
func (k EventKind) String() string {
	return [...]string{"started", "step", "paused", "resumed", "promoted", "aborted"}[k]
}

// Event is a transition of a rollout, delivered to ControllerOptions.OnEvent.
// The zero value describes nothing.
type Event struct {
	Kind   EventKind
	At     time.Time
	From   Phase
	To     Phase
	Step   int    // the step in force after the transition (-1 before the first)
	Weight uint32 // the weight in force after the transition
	Reason string // why, in words
	Manual bool   // true when a method call (Promote, Abort, ...) caused it
}
