package graceful

import (
	"context"
	"log/slog"
	"net"
	"os"
	"time"

	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// Defaults used when the matching Options field is zero.
const (
	// DefaultUpgradeTimeout bounds how long a new process may take to become
	// ready before it is killed and the upgrade fails.
	DefaultUpgradeTimeout = time.Minute
	// DefaultDrainTimeout bounds a drain: whatever is still open when it
	// elapses is closed.
	DefaultDrainTimeout = 30 * time.Second
	// DefaultCheckInterval is how often a new process re-runs its readiness
	// check while its predecessor bakes.
	DefaultCheckInterval = time.Second
	// DefaultStderrLines is how many trailing lines of a failed new process's
	// standard error are kept in the UpgradeError.
	DefaultStderrLines = 10
)

// Options configure an Upgrader. The zero value is usable: SIGHUP upgrades to
// the binary found at the path this process was started from, with no bake
// window, no readiness check, a one-minute upgrade timeout and a 30 s drain.
type Options struct {
	// UpgradeTimeout bounds the time from starting a new process to its
	// Ready. Zero means DefaultUpgradeTimeout.
	UpgradeTimeout time.Duration
	// BakeWindow keeps the old process warm (listeners open, not accepting)
	// for this long after a handoff. If the new process exits or leaves, or
	// its readiness check fails inside the window, the old process resumes
	// accepting. Zero means no bake window: the old process drains and exits
	// right after the handoff. UpgradeOptions.BakeWindow overrides it for
	// one upgrade.
	BakeWindow time.Duration
	// DrainTimeout bounds a drain; connections still open when it elapses
	// are closed. Zero means DefaultDrainTimeout.
	DrainTimeout time.Duration
	// DrainDelay is how long a process shutting down (not upgrading) stays
	// not-ready but still accepting, so that load balancers notice. Zero
	// means no delay.
	DrainDelay time.Duration
	// Check is the application's readiness check (warm caches, reach the
	// database...). Ready runs it before the process announces itself, and a
	// new process re-runs it every CheckInterval while its predecessor bakes.
	// Nil means always ready.
	Check func(ctx context.Context) error
	// CheckInterval is the period of readiness checks during a bake window.
	// Zero means DefaultCheckInterval.
	CheckInterval time.Duration
	// UpgradeSignal triggers an upgrade in Run. Nil means SIGHUP.
	UpgradeSignal os.Signal
	// PIDFile, when set, receives the PID of the process that accepts
	// connections, replaced atomically at every handoff and rollback.
	PIDFile string
	// Executable is the binary a new process is started from. Empty means
	// the path this process was started from (os.Args[0] resolved at New),
	// so an upgrade runs whatever binary now stands at that path.
	// UpgradeOptions.Binary overrides it for one upgrade.
	Executable string
	// Args are the new process's arguments (without argv[0]). Nil means
	// os.Args[1:]. UpgradeOptions.Args overrides them for one upgrade.
	Args []string
	// ListenConfig creates listeners that are not inherited. Nil means a
	// zero net.ListenConfig.
	ListenConfig *net.ListenConfig
	// StderrLines is how many trailing stderr lines of a failed new process
	// an UpgradeError keeps. Zero means DefaultStderrLines.
	StderrLines int
	// Logger receives lifecycle events. Nil discards them.
	Logger *slog.Logger
	// MeterProvider receives metrics. Nil means a no-op provider.
	MeterProvider metric.MeterProvider
	// TracerProvider receives a span per upgrade (graceful.upgrade, with
	// the new process's PID and the outcome). Nil means a no-op provider.
	TracerProvider trace.TracerProvider
}

// UpgradeOptions are one upgrade's own settings (UpgradeWith); a zero field
// means the Options value. The zero value upgrades as Upgrade does.
type UpgradeOptions struct {
	// Binary is the executable this upgrade starts. Empty means
	// Options.Executable. It is not remembered: after a rollback the
	// resumed process's next Upgrade starts Options.Executable again, so
	// install a release at a path of its own and name it here rather than
	// overwriting the shared path.
	Binary string
	// Args are the new process's arguments (without argv[0]). Nil means
	// Options.Args; an empty, non-nil slice means none.
	Args []string
	// BakeWindow is this upgrade's bake window. Zero means
	// Options.BakeWindow; negative means none for this upgrade (the old
	// process drains and exits right after the handoff) even when
	// Options.BakeWindow is set.
	BakeWindow time.Duration
}
