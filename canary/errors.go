package canary

import (
	"errors"
	"fmt"
)

var (
	// ErrInvalidOptions is wrapped by every *OptionsError: the Options given
	// to a constructor cannot work.
	ErrInvalidOptions = errors.New("canary: invalid options")
	// ErrWeight is returned for a weight above MaxWeight (10,000 basis
	// points, 100%).
	ErrWeight = errors.New("canary: weight out of range")
	// ErrFinished is returned by a Controller that has already promoted
	// the canary or aborted, when asked to change course.
	ErrFinished = errors.New("canary: rollout already finished")
	// ErrNotStarted is returned by Controller methods that need a running
	// rollout, before Start.
	ErrNotStarted = errors.New("canary: rollout not started")
	// ErrSnapshot is wrapped by every *SnapshotError: a snapshot given to
	// Merge or decoded from JSON has figures that cannot be right.
	ErrSnapshot = errors.New("canary: invalid snapshot")
)

// OptionsError says which field of an Options struct is wrong and why. The
// zero value names no field.
type OptionsError struct {
	Field  string // the field's path, e.g. "Steps[2].Weight"
	Reason string // what is wrong with it, in words
}

// Error implements error.
func (e *OptionsError) Error() string {
	return fmt.Sprintf("canary: invalid options: %s: %s", e.Field, e.Reason)
}

// Unwrap returns ErrInvalidOptions.
func (e *OptionsError) Unwrap() error { return ErrInvalidOptions }

func optErr(field, format string, args ...any) error {
	return &OptionsError{Field: field, Reason: fmt.Sprintf(format, args...)}
}
