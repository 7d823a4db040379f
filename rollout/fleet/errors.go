package fleet

import (
	"errors"
	"fmt"
)

// Sentinel errors. Match them with errors.Is; the errors returned by this
// package and by the engines wrap them with the detail an operator needs.
var (
	// ErrNotFound: no document at the key.
	ErrNotFound = errors.New("fleet: document not found")
	// ErrConflict is wrapped by *ConflictError: a compare-and-swap found
	// another revision than the writer read.
	ErrConflict = errors.New("fleet: revision conflict")
	// ErrFenced is wrapped by *FenceError: a write fenced by a leadership
	// that is no longer held was refused.
	ErrFenced = errors.New("fleet: leadership lost, write refused")
	// ErrLeaseLost: the lease expired or was revoked.
	ErrLeaseLost = errors.New("fleet: lease lost")
	// ErrNoLeader: the election has no leader now.
	ErrNoLeader = errors.New("fleet: no leader")
	// ErrCompacted: the change history a watch asked for was discarded;
	// list again and watch from the listing's revision.
	ErrCompacted = errors.New("fleet: revision compacted")
	// ErrUnreachable: the engine did not answer.
	ErrUnreachable = errors.New("fleet: engine unreachable")
	// ErrClosed: the engine or fleet object was closed.
	ErrClosed = errors.New("fleet: closed")
	// ErrInvalidKey: a key, prefix or election name is malformed.
	ErrInvalidKey = errors.New("fleet: invalid key")
	// ErrNotLeader: a leader-only action was asked of an instance that
	// does not lead.
	ErrNotLeader = errors.New("fleet: not the leader")
)

// ConflictError is a failed compare-and-swap. Got is the revision found (0:
// absent; -1: not known). It unwraps to ErrConflict. The zero value names no
// key and wanted absence.
type ConflictError struct {
	Key       string
	Want, Got int64
}

// Error names the key and both revisions.
func (e *ConflictError) Error() string {
	want := fmt.Sprintf("revision %d", e.Want)
	if e.Want == 0 {
		want = "no document"
	}
	switch e.Got {
	case -1:
		return fmt.Sprintf("fleet: conflict on %s: the writer expected %s, the engine holds another", e.Key, want)
	case 0:
		return fmt.Sprintf("fleet: conflict on %s: the writer expected %s, there is none", e.Key, want)
	}
	return fmt.Sprintf("fleet: conflict on %s: the writer expected %s, the engine holds revision %d", e.Key, want, e.Got)
}

// Unwrap returns ErrConflict.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// FenceError is a write refused because the leadership that fenced it is no
// longer held. Current is the election's term now (0 when it has no
// leader or it is not known). It unwraps to ErrFenced. The zero value names
// no election.
type FenceError struct {
	Election      string
	Term, Current int64
}

// Error names the election and the stale term.
func (e *FenceError) Error() string {
	if e.Current > 0 {
		return fmt.Sprintf("fleet: write fenced by %s term %d refused: the election is at term %d", e.Election, e.Term, e.Current)
	}
	return fmt.Sprintf("fleet: write fenced by %s term %d refused: that leadership is no longer held", e.Election, e.Term)
}

// Unwrap returns ErrFenced.
func (e *FenceError) Unwrap() error { return ErrFenced }
