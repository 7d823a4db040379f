package migrate

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Sentinel errors. Every error returned by this package that a caller may
// want to branch on wraps one of these; test with errors.Is.
var (
	// ErrInvalid means a migration, an operation or an option is malformed;
	// the wrapping *ValidationError says which one and why.
	ErrInvalid = errors.New("migrate: invalid migration")
	// ErrPhase means the requested phase transition is not allowed from the
	// migration's current phase (for example Complete before SwitchReads).
	ErrPhase = errors.New("migrate: wrong phase")
	// ErrLocked means another runner holds the runner lock, or (SQLite) that
	// the runner's lease was lost in the middle of a step, which then stops
	// as if cancelled and returns an error wrapping ErrLocked, not
	// context.Canceled. The step resumes when called again.
	ErrLocked = errors.New("migrate: runner lock held by another runner")
	// ErrOldVersionsAlive means Complete was refused because an instance of an
	// older application version heartbeats in the instance registry.
	ErrOldVersionsAlive = errors.New("migrate: instances of an older application version are alive")
	// ErrNewVersionsAlive means Rollback was refused because an instance of
	// the migration's version (or a newer one), which uses the new columns
	// Rollback would drop, heartbeats in the instance registry.
	ErrNewVersionsAlive = errors.New("migrate: instances of the new application version are alive")
	// ErrUnsafe means a Runner with Options.LintMode LintRefuse refused to
	// run operations with lint findings of SeverityError; the wrapping
	// *LintError lists them.
	ErrUnsafe = errors.New("migrate: unsafe schema change refused by lint")
	// ErrUnsupported means the operation cannot be done safely (or at all) on
	// the dialect in use.
	ErrUnsupported = errors.New("migrate: not supported on this dialect")
	// ErrLockTimeout means a DDL statement kept timing out on its lock after
	// every allowed retry.
	ErrLockTimeout = errors.New("migrate: DDL lock timeout, retries exhausted")
	// ErrLagging means Complete gave up waiting for live instances to act
	// on read_new; the wrapping *LaggingError names them.
	ErrLagging = errors.New("migrate: instances have not caught up with read_new")
	// ErrUnknownMigration means no state row exists for the migration name.
	ErrUnknownMigration = errors.New("migrate: unknown migration")
)

// ValidationError says which part of a migration is wrong. It wraps ErrInvalid.
// A zero ValidationError still wraps ErrInvalid; its message then says only
// "invalid migration".
type ValidationError struct {
	// Migration is the migration name ("" when it is the name itself that is missing).
	Migration string
	// Path locates the field, for example "operations[2].add_column.column.type".
	Path string
	// Reason says what is wrong with it.
	Reason string
}

// Error names the migration, where in it the problem is, and what it is.
func (e *ValidationError) Error() string {
	var b strings.Builder
	b.WriteString("migrate: invalid migration")
	if e.Migration != "" {
		fmt.Fprintf(&b, " %q", e.Migration)
	}
	if e.Path != "" {
		fmt.Fprintf(&b, " at %s", e.Path)
	}
	b.WriteString(": ")
	b.WriteString(e.Reason)
	return b.String()
}

// Unwrap makes errors.Is(err, ErrInvalid) true.
func (e *ValidationError) Unwrap() error { return ErrInvalid }

// PhaseError reports a refused phase transition. It wraps ErrPhase.
// A zero PhaseError still wraps ErrPhase; its message then names no
// migration, action or phase.
type PhaseError struct {
	Migration string
	// Action is the method that was called ("Backfill", "Complete", ...).
	Action string
	// Current is the phase the migration is in.
	Current Phase
	// Want lists the phases from which Action is allowed.
	Want []Phase
}

// Error names the refused action, the current phase and the phases that
// would allow it.
func (e *PhaseError) Error() string {
	want := make([]string, len(e.Want))
	for i, p := range e.Want {
		want[i] = string(p)
	}
	return fmt.Sprintf("migrate: %s of %q refused: migration is in phase %q, want one of [%s]",
		e.Action, e.Migration, e.Current, strings.Join(want, ", "))
}

// Unwrap makes errors.Is(err, ErrPhase) true.
func (e *PhaseError) Unwrap() error { return ErrPhase }

// OldVersionsError lists the live instances that made Complete refuse. It
// wraps ErrOldVersionsAlive.
// A zero OldVersionsError still wraps ErrOldVersionsAlive and lists no
// instance.
type OldVersionsError struct {
	Migration string
	// Need is the application version the migration requires everywhere.
	Need string
	// Alive lists the offending instances.
	Alive []InstanceInfo
}

// Error lists the live instances (id and version) that run older code.
func (e *OldVersionsError) Error() string {
	parts := make([]string, len(e.Alive))
	for i, in := range e.Alive {
		parts[i] = fmt.Sprintf("%s (version %s)", in.ID, in.Version)
	}
	return fmt.Sprintf("migrate: complete of %q refused: %d live instance(s) run a version older than %q: %s; stop them or use ForceComplete",
		e.Migration, len(e.Alive), e.Need, strings.Join(parts, ", "))
}

// Unwrap makes errors.Is(err, ErrOldVersionsAlive) true.
func (e *OldVersionsError) Unwrap() error { return ErrOldVersionsAlive }

// NewVersionsError lists the live instances that made Rollback refuse. It
// wraps ErrNewVersionsAlive.
// A zero NewVersionsError still wraps ErrNewVersionsAlive and lists no
// instance.
type NewVersionsError struct {
	Migration string
	// Version is Migration.Version: instances at it or newer use the new columns.
	Version string
	// Phase is the phase the migration was in when Rollback refused.
	Phase Phase
	// Alive lists the offending instances.
	Alive []InstanceInfo
}

// Error lists the live instances (id and version) that run the new code.
func (e *NewVersionsError) Error() string {
	parts := make([]string, len(e.Alive))
	for i, in := range e.Alive {
		parts[i] = fmt.Sprintf("%s (version %s)", in.ID, in.Version)
	}
	return fmt.Sprintf("migrate: rollback of %q refused in phase %q: %d live instance(s) run version %q or newer and use the columns it would drop: %s; roll them back first or use ForceRollback",
		e.Migration, e.Phase, len(e.Alive), e.Version, strings.Join(parts, ", "))
}

// Unwrap makes errors.Is(err, ErrNewVersionsAlive) true.
func (e *NewVersionsError) Unwrap() error { return ErrNewVersionsAlive }

// LintError lists the lint findings that made Start or Complete refuse
// (Options.LintMode LintRefuse). It wraps ErrUnsafe. A zero LintError still
// wraps ErrUnsafe and lists no finding.
type LintError struct {
	Migration string
	// Action is the refused method ("Start" or "Complete").
	Action string
	// Findings are the findings of SeverityError, in operation order.
	Findings []Finding
}

// Error names the migration and each finding: where, which rule, and the
// safe alternative.
func (e *LintError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "migrate: %s of %q refused: %d unsafe change(s) found by lint (fix them, or set Options.LintMode to LintWarn to run them anyway)", e.Action, e.Migration, len(e.Findings))
	for _, f := range e.Findings {
		b.WriteString("\n")
		b.WriteString(f.String())
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrUnsafe) true.
func (e *LintError) Unwrap() error { return ErrUnsafe }

// DDLError reports a DDL statement that failed, with the statement text.
// A zero DDLError has no statement and unwraps to nil, so it matches no
// sentinel.
type DDLError struct {
	// Statement is the SQL that failed.
	Statement string
	// Attempts is how many times it was tried.
	Attempts int
	// Err is the last error.
	Err error
}

// Error gives the attempts, the last error and the statement.
func (e *DDLError) Error() string {
	return fmt.Sprintf("migrate: DDL failed after %d attempt(s): %v; statement: %s", e.Attempts, e.Err, e.Statement)
}

// Unwrap returns the last error.
func (e *DDLError) Unwrap() error { return e.Err }

// LaggingError names the live instances that had not observed read_new
// when Complete (or AwaitCaughtUp) stopped waiting. It wraps ErrLagging
// and the reason the wait ended (context.DeadlineExceeded after
// Options.CatchUpTimeout, or the caller's cancellation). A zero
// LaggingError still wraps ErrLagging and names no instance.
type LaggingError struct {
	Migration string
	// Waited is the longest the wait could last (Options.CatchUpTimeout).
	Waited time.Duration
	// Lagging lists the instances that had not caught up.
	Lagging []InstanceInfo
	// Err is why the wait ended.
	Err error
}

// Error names the migration and each lagging instance with the phase it
// acts on.
func (e *LaggingError) Error() string {
	return fmt.Sprintf("migrate: complete of %q refused: waited up to %s for %d live instance(s) to act on read_new, still lagging: %s (%v); they must read the phase again (Instance.Phase or Instance.Observe), or use ForceComplete",
		e.Migration, e.Waited, len(e.Lagging), describe(e.Lagging), e.Err)
}

// Unwrap makes errors.Is(err, ErrLagging) and errors.Is(err, e.Err) true.
func (e *LaggingError) Unwrap() []error { return []error{ErrLagging, e.Err} }
