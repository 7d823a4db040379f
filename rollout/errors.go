package rollout

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is; the errors returned by this
// package wrap them with the detail an operator needs.
var (
	// ErrNotFound is returned by a Store when no state exists for an id.
	ErrNotFound = errors.New("rollout: state not found")
	// ErrConflict is returned by a Store when the stored revision is not the
	// one the writer read: another runner wrote in between. The runner that
	// gets it stops driving the rollout rather than overwrite the other.
	ErrConflict = errors.New("rollout: state revision conflict")
	// ErrHandedOff is returned by Run when this process handed the rollout
	// to a process of another version (an upgrade or a blue-green rollback
	// that hands back to the old process). The receiving process continues
	// it; this one must stop driving it and call Run again only if it gets
	// the drive back (for example when graceful resumes it).
	ErrHandedOff = errors.New("rollout: rollout handed off to another process")
	// ErrRolledBack is returned by Run when the rollout failed or was aborted
	// and every reversible completed step was rolled back.
	ErrRolledBack = errors.New("rollout: rolled back")
	// ErrRollbackFailed is returned by Run when a rollback action failed; the
	// system is between versions and needs an operator (Retry retries the
	// rollback).
	ErrRollbackFailed = errors.New("rollout: rollback failed")
	// ErrRunning is returned by Run when another Run of the same Rollout is
	// in progress.
	ErrRunning = errors.New("rollout: already running")
	// ErrInvalidCommand is wrapped by *CommandError: the command does not
	// apply to the rollout in its current state.
	ErrInvalidCommand = errors.New("rollout: command not valid now")
	// ErrInvalidPlan is wrapped by *PlanError.
	ErrInvalidPlan = errors.New("rollout: invalid plan")
	// ErrPlanChanged is returned by New when the stored state was written
	// for a plan with other steps than the one given.
	ErrPlanChanged = errors.New("rollout: plan differs from the stored rollout")
	// ErrAnalysisFailed is wrapped by *AnalysisError: an analysis (an
	// Analyze step, a flag ramp's or a bake window's) judged the new
	// version bad, and the rollout rolls back.
	ErrAnalysisFailed = errors.New("rollout: analysis failed")
	// ErrInvalidID is returned when a rollout id is empty or holds other
	// characters than letters, digits, '.', '_' and '-'.
	ErrInvalidID = errors.New("rollout: invalid rollout id")
	// ErrNotSaved is wrapped, with the store's error, when the Store did
	// not accept a transition (a full disk, a database gone). Nothing the
	// transition describes took effect, in memory or on disk: a refused
	// command changed nothing, and Run returns with the step still
	// recorded as it was, so that a later Run resumes it. A store
	// failure never turns into a rollback.
	ErrNotSaved = errors.New("rollout: state not saved")
	// ErrInvalidState is wrapped by *StateError: a stored state is not
	// one the runner wrote (edited by hand, planted, damaged).
	ErrInvalidState = errors.New("rollout: invalid stored state")
	// ErrProcessExited is wrapped by ProcessTarget.Healthy when the
	// process has exited: the health gate of a Rolling step fails at once
	// instead of waiting for HealthTimeout.
	ErrProcessExited = errors.New("rollout: target process exited")
	// ErrNotSupported is returned where the platform cannot do what is
	// asked (a ProcessTarget on Windows); the error names the platform.
	ErrNotSupported = errors.New("rollout: not supported on this platform")
)

// StateError says what is wrong with a stored state and where. It unwraps
// to ErrInvalidState. The zero value names no rollout and no field; the
// package always sets ID and Reason.
type StateError struct {
	ID     string // rollout id
	Field  string // JSON path of the bad value ("steps[2].status"), "" for the document
	Reason string
}

// Error names the rollout, the field and what is wrong with it.
func (e *StateError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("rollout: stored state of %q is not valid: %s", e.ID, e.Reason)
	}
	return fmt.Sprintf("rollout: stored state of %q is not valid: %s: %s", e.ID, e.Field, e.Reason)
}

// Unwrap returns ErrInvalidState.
func (e *StateError) Unwrap() error { return ErrInvalidState }

// PlanError says which step of a plan is wrong and why. It unwraps to
// ErrInvalidPlan. The zero value describes step 0 with no name and no
// reason; the package always sets Reason, and Step -1 for the plan as a
// whole.
type PlanError struct {
	Step   int    // index in the plan, -1 for the plan as a whole
	Name   string // step name, if known
	Reason string
}

// Error names the step (index and name) and what is wrong with it.
func (e *PlanError) Error() string {
	if e.Step < 0 {
		return fmt.Sprintf("rollout: invalid plan: %s", e.Reason)
	}
	return fmt.Sprintf("rollout: invalid plan: step %d (%s): %s", e.Step, e.Name, e.Reason)
}

// Unwrap returns ErrInvalidPlan.
func (e *PlanError) Unwrap() error { return ErrInvalidPlan }

// CommandError says why an operator command (promote, abort, ...) was
// refused. The admin handler turns it into a 409 with Reason. It unwraps
// to ErrInvalidCommand. The zero value names no command and no reason;
// the package always sets both.
type CommandError struct {
	Command string
	Reason  string
}

// Error names the refused command and why it was refused.
func (e *CommandError) Error() string {
	return fmt.Sprintf("rollout: %s refused: %s", e.Command, e.Reason)
}

// Unwrap returns ErrInvalidCommand.
func (e *CommandError) Unwrap() error { return ErrInvalidCommand }

// AnalysisError is a failed analysis: the verdict was Fail (or stayed
// Inconclusive past the allowed count) and Reason is what the analyzer said.
// It unwraps to ErrAnalysisFailed. The zero value is an inconclusive
// verdict with no reason (Verdict's zero value); the package always sets
// Reason.
type AnalysisError struct {
	Verdict Verdict
	Reason  string
}

// Error gives the verdict and the analyzer's reason.
func (e *AnalysisError) Error() string {
	return fmt.Sprintf("analysis %s: %s", e.Verdict, e.Reason)
}

// Unwrap returns ErrAnalysisFailed.
func (e *AnalysisError) Unwrap() error { return ErrAnalysisFailed }
