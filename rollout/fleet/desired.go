package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/batonhq/baton/rollout"
)

// Desired is what the leader wants one instance to run, at
// Layout.Desired(member): written by the leading driver only, fenced by its
// leadership, and not under a lease (it outlives every process of the
// instance, so that a restarted one applies it). The zero value asks for no
// version.
type Desired struct {
	// Version is the version the instance must run (ValidVersion).
	Version string `json:"version"`
	// Rollout is the id of the rollout that asked for it.
	Rollout string `json:"rollout,omitempty"`
	// Bake is how long the new process bakes (its predecessor warm, its
	// health checked) before it reports ready. Zero means no bake.
	Bake time.Duration `json:"bake,omitempty"`
	// Term is the leadership that wrote it.
	Term int64     `json:"term"`
	At   time.Time `json:"at"`
	// Revision is the engine revision of the document (not stored in it).
	Revision int64 `json:"-"`
}

// Observed is what an instance reports it runs, at Layout.Observed(member),
// under the reporting process's membership lease: it disappears with the
// process. The zero value is an instance that reported nothing.
type Observed struct {
	// Version is what this process runs.
	Version string `json:"version"`
	// State is the lifecycle state (StateReady, StateUpgrading,
	// StateBaking, StateDraining).
	State string `json:"state"`
	// Error says why the last desired version was not applied; "" when it
	// was (or nothing was asked).
	Error string `json:"error,omitempty"`
	// Desired is the engine revision of the Desired document this report
	// answers (0: none), and DesiredVersion its version: a report is
	// current for a Desired only when Desired is at least its revision.
	Desired        int64     `json:"desired"`
	DesiredVersion string    `json:"desiredVersion,omitempty"`
	PID            int       `json:"pid"`
	At             time.Time `json:"at"`
	// Revision is the engine revision of the document (not stored in it).
	Revision int64 `json:"-"`
}

// SetDesired writes what member must run, fenced by this leadership:
// refused once the leadership is lost. It returns the document's engine
// revision.
func (l *Lead) SetDesired(ctx context.Context, member string, d Desired) (int64, error) {
	if err := ValidVersion(d.Version); err != nil {
		return 0, err
	}
	key := l.d.m.keys.Desired(member)
	if err := ValidKey(key); err != nil {
		return 0, fmt.Errorf("fleet: desired state of %q: %w", member, err)
	}
	d.Term, d.At = l.Term(), time.Now()
	b, err := json.Marshal(d)
	if err != nil {
		return 0, err
	}
	rev, err := l.Commit(ctx, Op{Key: key, Value: b, Prev: Any})
	if err != nil {
		return 0, fmt.Errorf("fleet: writing the desired state of %s (%s): %w", member, d.Version, err)
	}
	return rev, nil
}

// ReadDesired returns what member is asked to run, or an error wrapping
// ErrNotFound.
func ReadDesired(ctx context.Context, e Engine, keys Layout, member string) (Desired, error) {
	var d Desired
	rev, err := readJSON(ctx, e, keys.Desired(member), &d)
	d.Revision = rev
	return d, err
}

// ReadObserved returns what member's live process last reported, or an
// error wrapping ErrNotFound (no live process reports).
func ReadObserved(ctx context.Context, e Engine, keys Layout, member string) (Observed, error) {
	var o Observed
	rev, err := readJSON(ctx, e, keys.Observed(member), &o)
	o.Revision = rev
	return o, err
}

// ReadStatus returns the stored state of rollout id, from any process
// (a member or not).
func ReadStatus(ctx context.Context, e Engine, keys Layout, id string) (rollout.Status, error) {
	data, _, err := newStore(e, keys, nil, DefaultLeaseTTL, nil).Load(ctx, id)
	if err != nil {
		return rollout.Status{}, err
	}
	var st rollout.Status
	if err := json.Unmarshal(data, &st); err != nil {
		return rollout.Status{}, fmt.Errorf("fleet: state of rollout %s: %w", id, err)
	}
	return st, nil
}

func readJSON(ctx context.Context, e Engine, key string, v any) (int64, error) {
	doc, err := e.Get(ctx, key)
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(doc.Value, v); err != nil {
		return 0, fmt.Errorf("fleet: document %s at revision %d: %w", key, doc.Revision, err)
	}
	return doc.Revision, nil
}

// ErrInvalidVersion: a version string that cannot name a release.
var ErrInvalidVersion = errors.New("fleet: invalid version")

var versionPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// ValidVersion checks a version before it reaches a path or an exec: 1 to
// 64 letters, digits, '.', '_', '+' and '-', starting with a letter or a
// digit. So it has no '/', cannot be "." or "..", and no shell or template
// character.
func ValidVersion(v string) error {
	if !versionPattern.MatchString(v) {
		return fmt.Errorf("%w %q: use 1 to 64 letters, digits, '.', '_', '+' or '-', starting with a letter or digit", ErrInvalidVersion, v)
	}
	return nil
}

// Resolver finds the executable of a version on this host. An Agent calls
// it with a version it checked with ValidVersion.
type Resolver interface {
	Binary(version string) (path string, err error)
}

// PathTemplate is the Resolver of a host whose releases are installed side
// by side, one directory per version, as a deploy tool lays them out: an
// absolute path in which every "{version}" is replaced by the version, such
// as "/opt/svc/releases/{version}/svc". The version is checked first
// (ValidVersion), the result must be a clean absolute path (the template
// cannot climb out of its directory), and it must be an executable regular
// file. The zero value resolves nothing.
type PathTemplate string

// VersionPlaceholder is what PathTemplate replaces by the version.
const VersionPlaceholder = "{version}"

// Binary implements Resolver.
func (p PathTemplate) Binary(version string) (string, error) {
	if err := ValidVersion(version); err != nil {
		return "", err
	}
	t := string(p)
	if !filepath.IsAbs(t) || !strings.Contains(t, VersionPlaceholder) {
		return "", fmt.Errorf("fleet: path template %q must be an absolute path containing %s", t, VersionPlaceholder)
	}
	path := strings.ReplaceAll(t, VersionPlaceholder, version)
	if filepath.Clean(path) != path {
		return "", fmt.Errorf("fleet: path template %q gives %q for %s, which is not a clean path", t, path, version)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("fleet: the binary of %s: %w", version, err)
	}
	if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
		return "", fmt.Errorf("fleet: the binary of %s, %s, is not an executable file (mode %v)", version, path, fi.Mode())
	}
	return path, nil
}
