package graceful

import (
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Upgrader is one process's life across upgrades: it hands listeners to a
// new process, keeps the old one warm for a bake window, and drains. There
// is one per process (inherited descriptors are a process-wide resource).
// The zero value is not usable; call New.
//
// # Who owns what
//
// mu guards the lifecycle state and everything listed under it below.
// Every change of state goes through transition, which refuses a move the
// table does not list, so that no path can, say, resume a process that has
// begun to stop, or drain one twice:
//
//	starting  → ready      Ready, once Check passed
//	ready     → upgrading  UpgradeWith
//	upgrading → ready      the new process failed and was killed
//	upgrading → baking     handed off with a bake window
//	upgrading → draining   handed off without one
//	baking    → ready      the new process left or gave serving back
//	baking    → draining   window over, Promote, or this process stops
//	starting, ready, upgrading → draining   Shutdown, Close, or serving given back
//	draining  → stopped    serving ended
//
// Blocking work (starting a process, pausing listeners, draining) runs
// outside mu on snapshots taken under it. Goroutines and their owners: the
// handoff goroutine (afterHandoff) owns the old process's bake and drain
// once UpgradeWith returns; in a new process whose predecessor bakes, the
// probation goroutines own the control socket (child.go); Shutdown owns its
// drain goroutine; Run owns the upgrades it starts. All count in wg, which
// Close waits for.
type Upgrader struct {
	opts    Options
	path    string   // the binary an upgrade starts unless told otherwise
	args    []string // its arguments
	log     *slog.Logger
	met     *metrics
	tracer  trace.Tracer
	in      *inheritance // what the parent handed down; nil on a first start
	drain   *drainer
	started time.Time
	sigs    chan os.Signal

	mu           sync.Mutex
	state        State
	inherited    map[fileKey]*os.File // handed down, not yet claimed by Listen
	activated    []*os.File           // systemd socket activation, first start only
	listeners    []*listener
	packets      []*packetConn
	handedOff    bool          // a successor holds the sockets (a bake may still undo it)
	parentBaking bool          // the predecessor is still a fallback (child.go)
	prob         *probation    // set by Ready when the predecessor bakes
	resumed      chan struct{} // closed and replaced each time this process resumes
	keep         []*os.File    // names pipes: closed only by process exit

	stopping  chan struct{} // Shutdown or Close called
	stopOnce  sync.Once
	closing   chan struct{} // Close called
	closeOnce sync.Once
	done      chan struct{} // nothing left to serve
	doneOnce  sync.Once
	wg        sync.WaitGroup
}

// New prepares the Upgrader of this process, taking over what a parent
// process handed down, or systemd's activated sockets on a first start.
func New(opts Options) (*Upgrader, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	u := &Upgrader{
		opts:      opts,
		log:       opts.Logger,
		met:       newMetrics(opts.MeterProvider),
		drain:     newDrainer(),
		started:   time.Now(),
		inherited: make(map[fileKey]*os.File),
		stopping:  make(chan struct{}),
		closing:   make(chan struct{}),
		done:      make(chan struct{}),
		resumed:   make(chan struct{}),
	}
	if u.log == nil {
		u.log = slog.New(slog.DiscardHandler)
	}
	tp := opts.TracerProvider
	if tp == nil {
		tp = tracenoop.NewTracerProvider()
	}
	u.tracer = tp.Tracer("github.com/batonhq/baton/graceful")
	u.path = opts.Executable
	if u.path == "" {
		p, err := exec.LookPath(os.Args[0])
		if err != nil {
			return nil, fmt.Errorf("graceful: resolving executable %q: %w", os.Args[0], err)
		}
		u.path = p
	}
	if p, err := filepath.Abs(u.path); err == nil {
		u.path = p
	}
	u.args = opts.Args
	if u.args == nil {
		u.args = os.Args[1:]
	}
	in, err := inherit()
	if err != nil {
		return nil, err
	}
	u.in = in
	if in != nil {
		u.inherited = in.files
		u.parentBaking = in.control != nil
	} else {
		// LISTEN_FDS is consumed here so that new processes, which get
		// their sockets from us, do not see it.
		u.activated = activatedFiles()
	}
	u.catchSignals()
	return u, nil
}

// withDefaults validates o and fills its zero fields.
func (o Options) withDefaults() (Options, error) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"UpgradeTimeout", o.UpgradeTimeout}, {"BakeWindow", o.BakeWindow}, {"DrainTimeout", o.DrainTimeout},
		{"DrainDelay", o.DrainDelay}, {"CheckInterval", o.CheckInterval},
	} {
		if d.v < 0 {
			return o, fmt.Errorf("graceful: Options.%s is negative (%s); use zero for the default", d.name, d.v)
		}
	}
	if o.StderrLines < 0 {
		return o, fmt.Errorf("graceful: Options.StderrLines is negative (%d)", o.StderrLines)
	}
	if o.UpgradeTimeout == 0 {
		o.UpgradeTimeout = DefaultUpgradeTimeout
	}
	if o.DrainTimeout == 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.CheckInterval == 0 {
		o.CheckInterval = DefaultCheckInterval
	}
	if o.StderrLines == 0 {
		o.StderrLines = DefaultStderrLines
	}
	if o.UpgradeSignal == nil {
		o.UpgradeSignal = syscall.SIGHUP
	}
	if o.ListenConfig == nil {
		o.ListenConfig = &net.ListenConfig{}
	}
	return o, nil
}

// HasParent reports whether this process was started by an upgrade.
func (u *Upgrader) HasParent() bool { return u.in != nil }

// State returns the current lifecycle state.
func (u *Upgrader) State() State {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.state
}

// Done is closed when this process has nothing left to serve: it handed off
// and drained, or it shut down.
func (u *Upgrader) Done() <-chan struct{} { return u.done }

// Resumed returns a channel that is closed the next time this process
// takes serving back from a new process inside the bake window (the new
// process exited or left, failed its Check, or called Rollback). Take the
// channel before calling Upgrade; each resume closes the channel handed out
// until then and starts a new one.
func (u *Upgrader) Resumed() <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.resumed
}

// transitions lists, for each state, the states it may move to.
var transitions = map[State][]State{
	StateStarting:  {StateReady, StateDraining},
	StateReady:     {StateUpgrading, StateDraining},
	StateUpgrading: {StateReady, StateBaking, StateDraining},
	StateBaking:    {StateReady, StateDraining},
	StateDraining:  {StateStopped},
}

// transitionLocked moves the lifecycle to to if it is in one of from and
// the move is in the table; it reports whether it moved. u.mu must be held.
func (u *Upgrader) transitionLocked(to State, from ...State) bool {
	cur := u.state
	found := false
	for _, f := range from {
		found = found || f == cur
	}
	if !found {
		return false
	}
	for _, next := range transitions[cur] {
		if next == to {
			u.state = to
			return true
		}
	}
	return false
}

// transition is transitionLocked taking u.mu.
func (u *Upgrader) transition(to State, from ...State) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.transitionLocked(to, from...)
}

// pauseListeners stops every listener accepting and returns once a
// connection the kernel handed over at that instant has reached its server
// (listener.pause). The sockets stay open.
func (u *Upgrader) pauseListeners() {
	u.mu.Lock()
	ls := append([]*listener(nil), u.listeners...)
	u.mu.Unlock()
	for _, l := range ls {
		l.pause()
	}
}

// finishOnce closes Done.
func (u *Upgrader) finishOnce() { u.doneOnce.Do(func() { close(u.done) }) }
