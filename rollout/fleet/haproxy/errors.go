package haproxy

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Sentinel errors. Match them with errors.Is; the errors of this package
// wrap them with the command, the server or the file that was wrong.
var (
	// ErrInvalidName: a backend or server name is not a plain HAProxy
	// name. It is refused before anything is sent, so that no name can
	// smuggle a second command onto the line.
	ErrInvalidName = errors.New("haproxy: invalid name")
	// ErrRuntime is wrapped by *CommandError: HAProxy answered a command
	// with an error ("No such server.", "Permission denied.").
	ErrRuntime = errors.New("haproxy: runtime API error")
	// ErrReplyTooLarge: an answer was longer than ClientOptions.MaxReply.
	ErrReplyTooLarge = errors.New("haproxy: reply too large")
	// ErrNotReady is wrapped by *GroupError: the group that was to take
	// traffic did not come up (health checks, weight 0) within
	// SwitchOptions.ReadyTimeout.
	ErrNotReady = errors.New("haproxy: group not ready")
	// ErrDrainTimeout is wrapped by *GroupError: the group that was to
	// drain still had sessions after SwitchOptions.DrainTimeout.
	ErrDrainTimeout = errors.New("haproxy: drain timed out")
	// ErrNotFound: no haproxy executable was found.
	ErrNotFound = errors.New("haproxy: executable not found")
)

// CommandError is HAProxy's answer to a command it refused. It unwraps to
// ErrRuntime. The zero value names no command.
type CommandError struct {
	// Command is the line sent, without its newline.
	Command string
	// Reply is HAProxy's answer, trimmed.
	Reply string
}

func (e *CommandError) Error() string {
	return fmt.Sprintf("haproxy: %q: %s", e.Command, e.Reply)
}

func (e *CommandError) Unwrap() error { return ErrRuntime }

// GroupError says which servers of a group kept a switch from completing
// and in what state each was. It unwraps to ErrNotReady or
// ErrDrainTimeout. The zero value names no server.
type GroupError struct {
	// Backend is the backend of the group.
	Backend string
	// Servers maps each server at fault to what HAProxy reported of it
	// ("DOWN", "weight 0", "3 sessions").
	Servers map[string]string
	// Err is ErrNotReady or ErrDrainTimeout.
	Err error
}

func (e *GroupError) Error() string {
	names := make([]string, 0, len(e.Servers))
	for n := range e.Servers {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s/%s: %s", e.Backend, n, e.Servers[n])
	}
	return fmt.Sprintf("%v: %s", e.Err, strings.Join(parts, ", "))
}

func (e *GroupError) Unwrap() error { return e.Err }
