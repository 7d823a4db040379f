package graceful

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Errors returned by this package wrap one of them.
var (
	// ErrUpgradeInProgress refuses a trigger while another upgrade runs.
	ErrUpgradeInProgress = errors.New("graceful: upgrade already in progress")
	// ErrNotReady refuses an upgrade before Ready succeeded.
	ErrNotReady = errors.New("graceful: process is not ready yet")
	// ErrParentBaking refuses an upgrade while the previous process still
	// bakes: it could roll back to itself underneath the new upgrade.
	ErrParentBaking = errors.New("graceful: previous process is still in its bake window")
	// ErrHandedOff refuses an upgrade in a process that already handed its
	// listeners to a successor (send the trigger to the new process).
	ErrHandedOff = errors.New("graceful: process has handed off to a successor")
	// ErrDraining refuses an upgrade or Ready in a process that is shutting down.
	ErrDraining = errors.New("graceful: process is draining")
	// ErrStart means the new process could not be started.
	ErrStart = errors.New("graceful: cannot start new process")
	// ErrChildExited means the new process exited before it became ready.
	ErrChildExited = errors.New("graceful: new process exited before ready")
	// ErrChildTimeout means the new process was not ready in time and was killed.
	ErrChildTimeout = errors.New("graceful: new process not ready before timeout")
	// ErrCheck means the readiness check failed.
	ErrCheck = errors.New("graceful: readiness check failed")
	// ErrNoFallback refuses Rollback in a process whose predecessor is not
	// baking (no bake window, window over, or predecessor gone).
	ErrNoFallback = errors.New("graceful: no previous process to give serving back to")
	// ErrNotSupported refuses an upgrade, Promote or Rollback on a platform
	// without socket handoff (Windows); the error names the platform.
	ErrNotSupported = errors.New("graceful: not supported on this platform")
	// ErrInherit means the handoff data from the parent process was unusable.
	ErrInherit = errors.New("graceful: cannot inherit from parent process")
)

// UpgradeError describes a failed upgrade: which process, why, and what it
// last wrote to standard error. The zero value describes nothing.
type UpgradeError struct {
	// Path is the binary that was started.
	Path string
	// PID is the new process's id, or 0 if it never started.
	PID int
	// ExitStatus is the new process's exit status, -1 if it was killed by a
	// signal or did not exit on its own.
	ExitStatus int
	// Stderr holds the last lines the new process wrote to standard error
	// before it failed.
	Stderr []string
	// Err is the cause; it wraps one of the package's sentinels, or the
	// context's error when Upgrade's ctx ended first.
	Err error
}

// Error names the executable, the child's pid once it had one, the cause
// and the child's last lines of stderr.
func (e *UpgradeError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "upgrade to %s", e.Path)
	if e.PID != 0 {
		fmt.Fprintf(&b, " (pid %d)", e.PID)
	}
	fmt.Fprintf(&b, ": %v", e.Err)
	if len(e.Stderr) > 0 {
		fmt.Fprintf(&b, "; last stderr: %q", strings.Join(e.Stderr, " | "))
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *UpgradeError) Unwrap() error { return e.Err }
