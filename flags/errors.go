package flags

import (
	"errors"
	"strconv"
	"strings"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrInvalid wraps every rejected definition or file: the whole update
	// is refused and the previous configuration stays in force.
	ErrInvalid = errors.New("flags: invalid configuration")
	// ErrCycle is wrapped by ErrInvalid when prerequisites form a cycle.
	ErrCycle = errors.New("flags: prerequisite cycle")
	// ErrFlagNotFound reports an evaluation or admin action on an unknown flag.
	ErrFlagNotFound = errors.New("flags: flag not found")
	// ErrTypeMismatch reports an evaluation with the wrong typed method.
	ErrTypeMismatch = errors.New("flags: type mismatch")
	// ErrClosed reports a call on a closed Store, FileSource or
	// DocumentSource.
	ErrClosed = errors.New("flags: closed")
	// ErrOldVersion reports a document whose version is below the one in
	// force, or equal to it with other content: a transport delivers
	// versions in order, so it is a replay or a bug, and nothing changes.
	ErrOldVersion = errors.New("flags: document version is not newer than the one in force")
)

// ErrorCode is the OpenFeature error code of an evaluation. The zero
// ErrorCode means no error.
type ErrorCode string

// Error codes, spelled as OpenFeature spells them.
const (
	CodeNone         ErrorCode = ""
	CodeFlagNotFound ErrorCode = "FLAG_NOT_FOUND"
	CodeTypeMismatch ErrorCode = "TYPE_MISMATCH"
	CodeParseError   ErrorCode = "PARSE_ERROR"
	CodeGeneral      ErrorCode = "GENERAL"
)

// LoadError says where a definition is wrong: the file (empty for code),
// the flag or segment, the line (0 when unknown) and the field path.
// The zero LoadError says nothing; the package always fills Err.
type LoadError struct {
	File    string // path of the file, or the source name for code
	Flag    string // flag key; empty when the error is elsewhere
	Segment string // segment name, when the error is in a segment
	Line    int    // 1-based line in File, 0 when not from a file
	Field   string // path of the offending field, e.g. "rules[1].if.all[0].op"
	Err     error  // what is wrong
}

// Error formats as "file:line: flag "key": field: cause".
func (e *LoadError) Error() string {
	var b strings.Builder
	b.WriteString("flags: ")
	if e.File != "" {
		b.WriteString(e.File)
		if e.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(e.Line))
		}
		b.WriteString(": ")
	}
	if e.Flag != "" {
		b.WriteString("flag ")
		b.WriteString(strconv.Quote(e.Flag))
		b.WriteString(": ")
	}
	if e.Segment != "" {
		b.WriteString("segment ")
		b.WriteString(strconv.Quote(e.Segment))
		b.WriteString(": ")
	}
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause; errors.Is(err, ErrInvalid) holds for every
// LoadError.
func (e *LoadError) Unwrap() []error { return []error{ErrInvalid, e.Err} }
