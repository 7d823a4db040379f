package rollout

import "time"

// Phase is the state of a whole rollout. The zero value is PhasePending.
type Phase string

// Phases of a rollout.
const (
	PhasePending     Phase = ""             // created, no step started
	PhaseRunning     Phase = "running"      // executing steps
	PhaseSucceeded   Phase = "succeeded"    // every step done
	PhaseRollingBack Phase = "rolling-back" // undoing completed steps
	PhaseRolledBack  Phase = "rolled-back"  // undone after a failure or abort
	PhaseFailed      Phase = "failed"       // a rollback action failed: needs an operator
)

// Done reports whether the phase is final (only Retry leaves it).
func (p Phase) Done() bool {
	return p == PhaseSucceeded || p == PhaseRolledBack || p == PhaseFailed
}

// StepStatus is the state of one step. Steps start as StepPending; the zero
// value ("") is not written by the runner and is treated like StepPending.
type StepStatus string

// Step statuses.
const (
	StepPending        StepStatus = "pending"
	StepRunning        StepStatus = "running"
	StepSucceeded      StepStatus = "succeeded"
	StepSkipped        StepStatus = "skipped"
	StepFailed         StepStatus = "failed"
	StepRollingBack    StepStatus = "rolling-back"
	StepRolledBack     StepStatus = "rolled-back"
	StepRollbackFailed StepStatus = "rollback-failed"
)

// Handoff marks where a step that moves the rollout between processes
// (upgrade, blue-green) stands, so that after a crash or handoff the
// process that loads the state knows whether the new process took over.
type Handoff string

// Handoff positions.
const (
	HandoffNone       Handoff = ""
	HandoffHandedOff  Handoff = "handed-off"  // Upgrade returned: the new process drives
	HandoffHandedBack Handoff = "handed-back" // rollback handed back to the old process
)

// Decision is one decision the runner took and why, in words an operator
// reads. The zero value is an empty decision.
type Decision struct {
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
	// Verdict is set on the decision of an analysis: "pass", "fail" or
	// "inconclusive" (Verdict.String).
	Verdict string `json:"verdict,omitempty"`
	// Measurement is what the analysis measured, when its Analyzer is a
	// MeasuredAnalyzer.
	Measurement *Measurement `json:"measurement,omitempty"`
	// Percent is the flag percentage a ramp-flag step set, and Weight the
	// canary weight in basis points a set-weight step set (or its
	// rollback), so that the console can chart them over time.
	Percent *float64 `json:"percent,omitempty"`
	Weight  *uint32  `json:"weight,omitempty"`
}

// StepState is the persisted record of one step. The zero value is a
// pending step with no name.
type StepState struct {
	Name         string     `json:"name"`
	Kind         Kind       `json:"kind"`
	Description  string     `json:"description"`
	Irreversible bool       `json:"irreversible,omitempty"`
	Status       StepStatus `json:"status"`
	// Progress counts the completed units of a step made of several (ramp
	// percentages, rolling batches, analysis runs, bake checks), so that a
	// resumed step continues instead of starting over.
	Progress int `json:"progress,omitempty"`
	// Attempts counts how many times the step was started (a resume after a
	// crash starts it again).
	Attempts int `json:"attempts,omitempty"`
	// From and To are the versions of a handoff step.
	From    string  `json:"from,omitempty"`
	To      string  `json:"to,omitempty"`
	Handoff Handoff `json:"handoff,omitempty"`
	// WaitStartedAt is when the current timed wait (pause, bake) began, so
	// a resumed wait only waits for what is left.
	WaitStartedAt time.Time `json:"waitStartedAt,omitzero"`
	// Waiting is set while the step waits for an operator's promote. It
	// describes a live runner: New clears it when it loads a state.
	Waiting bool `json:"waiting,omitempty"`
	// Promoted is set on a blue-green step once its bake ended in
	// promotion (recorded before the old process is told to exit): the
	// old process is gone, so the step is a point of no return that a
	// rollback stops at, like an irreversible step.
	Promoted           bool       `json:"promoted,omitempty"`
	StartedAt          time.Time  `json:"startedAt,omitzero"`
	FinishedAt         time.Time  `json:"finishedAt,omitzero"`
	RollbackStartedAt  time.Time  `json:"rollbackStartedAt,omitzero"`
	RollbackFinishedAt time.Time  `json:"rollbackFinishedAt,omitzero"`
	Error              string     `json:"error,omitempty"`
	Decisions          []Decision `json:"decisions,omitempty"`
}

// Duration is how long the step ran (until now if it still runs).
func (s *StepState) Duration(now time.Time) time.Duration {
	if s.StartedAt.IsZero() {
		return 0
	}
	if s.FinishedAt.IsZero() {
		return now.Sub(s.StartedAt)
	}
	return s.FinishedAt.Sub(s.StartedAt)
}

// Status is the persisted record of a rollout, written to the Store after
// every transition. It is plain JSON so an operator can read the file; New
// refuses a stored document with unknown fields, unknown values or
// numbers out of range (see ErrInvalidState). The zero value is a pending
// rollout with no steps.
type Status struct {
	ID       string `json:"id"`
	Phase    Phase  `json:"phase"`
	PlanHash string `json:"planHash"`
	// Revision is the store revision this state was loaded at (not stored
	// in the document; the store keeps it).
	Revision int64 `json:"-"`
	// Run counts the attempts of the whole rollout (Retry adds one).
	Run int `json:"run"`
	// Current is the index of the step being executed or rolled back, -1
	// when none.
	Current        int         `json:"current"`
	Paused         bool        `json:"paused,omitempty"`
	PromoteFull    bool        `json:"promoteFull,omitempty"`
	AbortRequested string      `json:"abortRequested,omitempty"`
	Reason         string      `json:"reason,omitempty"`
	StartedAt      time.Time   `json:"startedAt,omitzero"`
	UpdatedAt      time.Time   `json:"updatedAt,omitzero"`
	FinishedAt     time.Time   `json:"finishedAt,omitzero"`
	Steps          []StepState `json:"steps"`
	// Decisions are the rollout-level decisions (started, paused, abort
	// requested...), capped like a step's at MaxDecisions.
	Decisions []Decision `json:"decisions,omitempty"`
	// Weight is the canary weight in basis points the rollout last set
	// (a set-weight step or its rollback), recorded before the
	// WeightSetter is called; nil when it set none. It belongs to the
	// release, not to a process: a process of the release's version that
	// starts (after an upgrade, a crash, a restart) applies it with
	// Rollout.Restore before it serves.
	Weight *uint32 `json:"weight,omitempty"`
	// Release is the manifest the rollout was started from (see
	// ParseRelease and Driver), nil for a plan built in code. Every
	// process that loads the state binds the same manifest to its own
	// adapters.
	Release *Release `json:"release,omitempty"`
	// Trace is the rollout's root span, recorded by the first Run whose
	// TracerProvider records, so that a process that resumes the rollout
	// (after a crash, a handoff or a Retry) continues the same trace. Nil
	// when tracing is off.
	Trace *TraceRef `json:"trace,omitempty"`
}

// TraceRef names a span by its W3C trace context ids, in lower-case hex.
// The zero value names no span (it is not valid and is ignored).
type TraceRef struct {
	TraceID string `json:"traceId"`
	SpanID  string `json:"spanId"`
	Sampled bool   `json:"sampled,omitempty"`
}

func (s *Status) clone() Status {
	c := *s
	c.Steps = make([]StepState, len(s.Steps))
	for i, st := range s.Steps {
		st.Decisions = append([]Decision(nil), st.Decisions...)
		c.Steps[i] = st
	}
	c.Decisions = append([]Decision(nil), s.Decisions...)
	if s.Trace != nil {
		t := *s.Trace
		c.Trace = &t
	}
	if s.Weight != nil {
		w := *s.Weight
		c.Weight = &w
	}
	// Release is never changed once set: the copy shares it.
	return c
}
