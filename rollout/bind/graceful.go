package bind

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/batonhq/baton/graceful"
	"github.com/batonhq/baton/internal/atomicfile"
	"github.com/batonhq/baton/rollout"
)

// DefaultBakeMargin is what Upgrader adds to a blue-green step's bake for
// graceful's bake window: the old process must still be a fallback when
// the rollout's last analysis ends.
const DefaultBakeMargin = 30 * time.Second

// UpgraderOptions configure NewUpgrader. The zero value installs nothing
// and keeps the old process warm DefaultBakeMargin past a rollout's bake.
type UpgraderOptions struct {
	// Install is the path the service is started from (a systemd unit's
	// ExecStart, a supervisor's command): when a release's new process is
	// promoted, its binary is installed there (atomically; the one it
	// replaces is kept at Install+".previous"), so that a restart runs
	// the release, and a rollback that follows restores the previous one.
	// A release that fails before its promotion never touches it. Empty
	// means nothing is installed.
	Install string
	// BakeMargin is added to the rollout's bake for graceful's bake
	// window. Zero means DefaultBakeMargin.
	BakeMargin time.Duration
}

// Upgrader drives upgrade and blue-green steps with a *graceful.Upgrader:
// UpgradeTo is a socket handoff to the release's own binary
// (graceful.UpgradeWith, with a bake window of the rollout's bake plus
// BakeMargin; a plain Upgrade runs graceful's default binary); Promote and
// Rollback run in the new process during the bake window and end it
// through graceful's Promote (the old process drains and exits) and
// Rollback (the old process resumes, this one drains and finishes), after
// installing the release's binary at UpgraderOptions.Install (Promote) or
// putting the previous one back (Rollback). The zero value is not usable:
// use NewUpgrader.
//
// After Run returns rollout.ErrHandedOff, call AwaitDrive: in an old
// process that got serving back, build a new Rollout from the Store (the
// new process wrote the state meanwhile) and Run it, which finishes the
// rollback (rollout.Driver does all of this).
type Upgrader struct {
	u *graceful.Upgrader
	o UpgraderOptions

	mu        sync.Mutex
	resumed   <-chan struct{} // taken before the latest handoff
	installed bool            // this process installed its binary at Install
}

// NewUpgrader adapts u.
func NewUpgrader(u *graceful.Upgrader, o UpgraderOptions) *Upgrader {
	if o.BakeMargin == 0 {
		o.BakeMargin = DefaultBakeMargin
	}
	return &Upgrader{u: u, o: o, resumed: u.Resumed()}
}

// Upgrade hands the listeners to a new process started from graceful's
// Options.Executable, with its Options.BakeWindow, and returns once it is
// ready (graceful Upgrade). Rollout steps call UpgradeTo instead.
func (g *Upgrader) Upgrade(ctx context.Context) error {
	g.takeResumed()
	return g.u.Upgrade(ctx)
}

// takeResumed is called before a handoff, so that a resume racing with
// its return is not missed.
func (g *Upgrader) takeResumed() {
	ch := g.u.Resumed()
	g.mu.Lock()
	g.resumed = ch
	g.mu.Unlock()
}

// UpgradeTo hands the listeners to a new process started from
// spec.Binary (graceful's default when empty), with a bake window of
// spec.Bake plus BakeMargin (none for a plain upgrade), and returns once
// it is ready (graceful UpgradeWith).
func (g *Upgrader) UpgradeTo(ctx context.Context, spec rollout.UpgradeSpec) error {
	o := graceful.UpgradeOptions{Binary: spec.Binary, BakeWindow: -1}
	if spec.Bake > 0 {
		o.BakeWindow = spec.Bake + g.o.BakeMargin
	}
	if spec.Binary != "" {
		fi, err := os.Stat(spec.Binary)
		if err != nil {
			return fmt.Errorf("bind: release binary: %w", err)
		}
		if !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			return fmt.Errorf("bind: release binary %s is not an executable file (mode %v)", spec.Binary, fi.Mode())
		}
	}
	g.takeResumed()
	return g.u.UpgradeWith(ctx, o)
}

// Promote installs this process's binary at Install, then ends the
// predecessor's bake window now (graceful Promote). It is idempotent: an
// installed binary is not installed twice, and with no baking predecessor
// graceful's Promote does nothing.
func (g *Upgrader) Promote(ctx context.Context) error {
	if err := g.install(); err != nil {
		return err
	}
	return g.u.Promote(ctx)
}

// Rollback puts the previous binary back at Install if this process
// installed its own, then gives serving back to the baking predecessor,
// which resumes, and drains this process (graceful Rollback). It fails,
// wrapping graceful.ErrNoFallback, when the predecessor no longer bakes.
func (g *Upgrader) Rollback(ctx context.Context) error {
	if err := g.restore(); err != nil {
		return err
	}
	return g.u.Rollback(ctx)
}

// install copies this process's executable to Install, keeping the one
// there at Install+".previous".
func (g *Upgrader) install() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.o.Install == "" || g.installed {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bind: install: %w", err)
	}
	if same(self, g.o.Install) {
		return nil // started from the installed path: nothing to install
	}
	if _, err := os.Stat(g.o.Install); err == nil {
		if err := copyFile(g.o.Install, g.o.Install+".previous"); err != nil {
			return fmt.Errorf("bind: keeping the previous binary: %w", err)
		}
	}
	if err := copyFile(self, g.o.Install); err != nil {
		return fmt.Errorf("bind: installing %s at %s: %w", self, g.o.Install, err)
	}
	g.installed = true
	return nil
}

// restore puts Install+".previous" back, if this process installed.
func (g *Upgrader) restore() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.installed {
		return nil
	}
	prev := g.o.Install + ".previous"
	if err := copyFile(prev, g.o.Install); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("bind: restoring the previous binary at %s: %w", g.o.Install, err)
	}
	g.installed = false
	return nil
}

func same(a, b string) bool {
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// copyFile replaces dst with a copy of src, executable, atomically.
func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	data, err := io.ReadAll(in)
	if err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+".install")
	if err := atomicfile.WriteFile(tmp, data); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// AwaitDrive waits, after this process handed the drive away, until it
// either took serving back from its successor (true: run the rollout
// again, from a new Rollout) or finished serving (false: the successor
// stays; exit). It returns ctx.Err() if ctx ends first.
func (g *Upgrader) AwaitDrive(ctx context.Context) (resumed bool, err error) {
	g.mu.Lock()
	ch := g.resumed
	g.mu.Unlock()
	select {
	case <-ch:
		return true, nil
	case <-g.u.Done():
		// A resume and the end of serving cannot both happen; prefer
		// the resume if both channels are ready.
		select {
		case <-ch:
			return true, nil
		default:
		}
		return false, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

var (
	_ rollout.Upgrader       = (*Upgrader)(nil)
	_ rollout.SpecUpgrader   = (*Upgrader)(nil)
	_ rollout.BakeController = (*Upgrader)(nil)
)
