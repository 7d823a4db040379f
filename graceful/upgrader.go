package graceful

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/activation"
	"github.com/coreos/go-systemd/v22/daemon"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// Upgrader is one process's life across upgrades: it hands listeners to a
// new process, keeps the old one warm for a bake window, and drains. There
// is one per process (inherited descriptors are a process-wide resource).
// The zero value is not usable; call New.
type Upgrader struct {
	opts    Options
	path    string
	args    []string
	log     *slog.Logger
	met     *metrics
	tracer  trace.Tracer
	in      *inheritance
	drain   *drainer
	started time.Time

	mu           sync.Mutex
	state        State
	inherited    map[fileKey]*os.File // not yet claimed by Listen
	activated    []*os.File           // systemd socket activation, first start only
	listeners    []*listener
	packets      []*packetConn
	parentBaking bool
	giveBackAck  chan bool
	bakeReqs     chan bakeReq  // Promote and Rollback, to the probation goroutine
	probDone     chan struct{} // closed when the probation goroutine ends; nil before
	resumed      chan struct{} // closed and replaced each time this process resumes
	keep         []*os.File    // names pipes: closed only by process exit
	child        *child        // during an upgrade or a bake
	sigs         chan os.Signal
	handedOff    bool // a successor holds the sockets

	stopping  chan struct{} // Shutdown or Close called
	stopOnce  sync.Once
	closing   chan struct{} // Close called
	closeOnce sync.Once
	done      chan struct{}
	doneOnce  sync.Once
	wg        sync.WaitGroup
}

// New prepares the Upgrader of this process, taking over what a parent
// process handed down, or systemd's activated sockets on a first start.
func New(opts Options) (*Upgrader, error) {
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"UpgradeTimeout", opts.UpgradeTimeout}, {"BakeWindow", opts.BakeWindow}, {"DrainTimeout", opts.DrainTimeout},
		{"DrainDelay", opts.DrainDelay}, {"CheckInterval", opts.CheckInterval},
	} {
		if d.v < 0 {
			return nil, fmt.Errorf("graceful: Options.%s is negative (%s); use zero for the default", d.name, d.v)
		}
	}
	if opts.StderrLines < 0 {
		return nil, fmt.Errorf("graceful: Options.StderrLines is negative (%d)", opts.StderrLines)
	}
	if opts.UpgradeTimeout <= 0 {
		opts.UpgradeTimeout = DefaultUpgradeTimeout
	}
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = DefaultDrainTimeout
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.StderrLines <= 0 {
		opts.StderrLines = DefaultStderrLines
	}
	if opts.UpgradeSignal == nil {
		opts.UpgradeSignal = syscall.SIGHUP
	}
	if opts.ListenConfig == nil {
		opts.ListenConfig = &net.ListenConfig{}
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
		bakeReqs:  make(chan bakeReq),
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
		u.activated = activation.Files(true)
	}
	u.catchSignals()
	return u, nil
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

// Listen returns a stream listener for network and address: the one handed
// down by the parent process under the same network and address, a socket
// activated by systemd with that address, or a new one. Wrap it for TLS
// after Listen. Its Accept blocks until Ready and while the process bakes
// or drains, so serving may start before Ready. Call Listen before Ready:
// descriptors handed down and not claimed by then are closed.
func (u *Upgrader) Listen(ctx context.Context, network, addr string) (net.Listener, error) {
	key := fileKey{kindListener, network, addr}
	u.mu.Lock()
	defer u.mu.Unlock()
	inner, f, err := openLocked(u, ctx, key, socketKind[net.Listener]{
		name:     "listener",
		fromFile: net.FileListener,
		listen:   u.opts.ListenConfig.Listen,
	})
	if err != nil {
		return nil, err
	}
	l := newListener(inner, key, f)
	if u.state == StateStarting {
		// A process accepts only once its readiness check passed;
		// until then connections wait in the kernel's queue (or go to
		// the parent, which holds the same socket).
		l.pause()
	}
	u.listeners = append(u.listeners, l)
	return l, nil
}

// ListenPacket is Listen for packet sockets (UDP, unixgram). Packet sockets
// cannot be paused: both processes may read from the socket during a
// handoff, so stop reading when Draining's channel closes.
func (u *Upgrader) ListenPacket(ctx context.Context, network, addr string) (net.PacketConn, error) {
	key := fileKey{kindPacket, network, addr}
	u.mu.Lock()
	defer u.mu.Unlock()
	pc, f, err := openLocked(u, ctx, key, socketKind[net.PacketConn]{
		name:     "packet conn",
		packet:   true,
		fromFile: net.FilePacketConn,
		listen:   u.opts.ListenConfig.ListenPacket,
	})
	if err != nil {
		return nil, err
	}
	p := &packetConn{PacketConn: pc, key: key, file: f}
	u.packets = append(u.packets, p)
	return p, nil
}

// socketKind is what Listen and ListenPacket differ in: how a socket is made
// from a descriptor and how a new one is opened.
type socketKind[T io.Closer] struct {
	name     string // in errors: "listener", "packet conn"
	packet   bool   // for takeActivated
	fromFile func(*os.File) (T, error)
	listen   func(ctx context.Context, network, addr string) (T, error)
}

// openLocked returns the socket for key, in order of preference: the one
// handed down by the parent, one activated by systemd, or a new one; and
// the descriptor to hand to a new process (the inherited one, or a
// duplicate this process owns). u.mu must be held.
func openLocked[T io.Closer](u *Upgrader, ctx context.Context, key fileKey, k socketKind[T]) (sock T, f *os.File, err error) {
	var zero T
	network, addr := key[1], key[2]
	if u.state >= StateDraining {
		return zero, nil, ErrDraining
	}
	if err := u.uniqueLocked(key); err != nil {
		return zero, nil, err
	}
	if f = u.inherited[key]; f != nil {
		delete(u.inherited, key)
		if sock, err = k.fromFile(f); err != nil {
			f.Close()
			return zero, nil, fmt.Errorf("%w: %s %s: %v", ErrInherit, k.name, key, err)
		}
	} else if af := u.takeActivated(network, addr, k.packet); af != nil {
		sock, err = k.fromFile(af)
		af.Close()
		if err != nil {
			return zero, nil, fmt.Errorf("graceful: activated socket for %s %s: %w", network, addr, err)
		}
	} else if sock, err = k.listen(ctx, network, addr); err != nil {
		return zero, nil, fmt.Errorf("graceful: listen %s %s: %w", network, addr, err)
	}
	if ul, ok := any(sock).(*net.UnixListener); ok {
		// The path must outlive this process when a successor serves it.
		ul.SetUnlinkOnClose(false)
	}
	if f != nil {
		return sock, f, nil
	}
	sc, ok := any(sock).(syscall.Conn)
	if !ok {
		sock.Close()
		return zero, nil, fmt.Errorf("graceful: %T cannot be handed to a new process", sock)
	}
	if f, err = dupFile(sc, key); err != nil {
		sock.Close()
		return zero, nil, fmt.Errorf("graceful: listen %s %s: %w", network, addr, err)
	}
	return sock, f, nil
}

// uniqueLocked refuses a second socket under the same network and address:
// the new process could inherit only one of them.
func (u *Upgrader) uniqueLocked(k fileKey) error {
	for _, l := range u.listeners {
		if l.key == k {
			return fmt.Errorf("graceful: Listen(%q, %q) called twice; each network and address can be handed down once", k[1], k[2])
		}
	}
	for _, p := range u.packets {
		if p.key == k {
			return fmt.Errorf("graceful: ListenPacket(%q, %q) called twice; each network and address can be handed down once", k[1], k[2])
		}
	}
	return nil
}

// takeActivated finds a systemd-activated socket bound to addr.
func (u *Upgrader) takeActivated(network, addr string, packet bool) *os.File {
	for i, f := range u.activated {
		var a net.Addr
		if packet {
			pc, err := net.FilePacketConn(f)
			if err != nil {
				continue
			}
			a = pc.LocalAddr()
			pc.Close()
		} else {
			l, err := net.FileListener(f)
			if err != nil {
				continue
			}
			a = l.Addr()
			l.Close()
		}
		if a.String() == addr || (a.Network() == network && sameAddr(a.String(), addr)) {
			u.activated = append(u.activated[:i], u.activated[i+1:]...)
			return f
		}
	}
	return nil
}

func sameAddr(have, want string) bool {
	hh, hp, err1 := net.SplitHostPort(have)
	wh, wp, err2 := net.SplitHostPort(want)
	if err1 != nil || err2 != nil || hp != wp {
		return false
	}
	return hh == wh || wh == "" || (wh == "0.0.0.0" && hh == "::")
}

// HTTP registers srv for draining: its connections are tracked through
// ConnState (the previous hook still runs), its request contexts carry
// what Draining needs, and its Handler (nil means http.DefaultServeMux) is
// wrapped so that HTTP/1 answers written during a drain carry Connection:
// close. Set srv.Handler first, and call HTTP before srv.Serve, with a
// listener from Listen.
func (u *Upgrader) HTTP(srv *http.Server) { u.drain.addHTTP(srv) }

// GRPC registers a gRPC server (anything with GracefulStop and Stop) for
// draining: GracefulStop when serving ends for good, Stop at the deadline.
func (u *Upgrader) GRPC(s GRPCServer) { u.drain.addGRPC(s) }

// Track registers a raw or hijacked connection. finish, if not nil, is
// called when a drain starts (at once if one is under way) to ask the owner
// to wrap up; c is closed if still tracked at the drain deadline. Call the
// returned release when c is done; it is idempotent.
func (u *Upgrader) Track(c io.Closer, finish func()) (release func()) {
	return u.drain.track(c, finish)
}

// Ready runs the readiness check and then announces this process: to its
// parent, which stops accepting, or to systemd on a first start. Inherited
// descriptors that no Listen claimed are closed. It fails with ErrCheck
// (wrapping the check's error) without announcing anything; exit non-zero
// then, and the parent keeps serving.
func (u *Upgrader) Ready(ctx context.Context) error {
	u.mu.Lock()
	st := u.state
	u.mu.Unlock()
	if st != StateStarting {
		if st >= StateDraining {
			return ErrDraining
		}
		return nil
	}
	if u.opts.Check != nil {
		if err := u.opts.Check(ctx); err != nil {
			return fmt.Errorf("%w: %w", ErrCheck, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	u.mu.Lock()
	for k, f := range u.inherited {
		f.Close()
		delete(u.inherited, k)
	}
	for _, f := range u.activated {
		f.Close()
	}
	u.activated = nil
	u.state = StateReady
	if u.in != nil && u.in.control != nil {
		// Set up before the listeners resume: a Rollback or Promote that
		// a request triggers as soon as this process serves must find
		// the probation (it waits for its goroutine to start) rather
		// than fail with ErrNoFallback.
		u.giveBackAck = make(chan bool, 1)
		u.probDone = make(chan struct{})
	}
	for _, l := range u.listeners {
		l.resume()
	}
	u.mu.Unlock()
	if err := writePIDFile(u.opts.PIDFile); err != nil {
		u.log.Error("writing PID file", "err", err)
	}
	if u.in == nil {
		u.notify(daemon.SdNotifyReady)
		u.log.Info("ready")
		return nil
	}
	u.in.restoreStderr()
	if err := u.in.sendReady(time.Since(u.started)); err != nil {
		// The parent is gone (killed mid-handoff): this process is the
		// only one left and serves alone.
		u.log.Warn("parent did not take the readiness notice; serving alone", "err", err)
		u.mu.Lock()
		u.parentBaking = false
		u.mu.Unlock()
	}
	u.notifyMain()
	u.log.Info("ready", "parent_pid", os.Getppid(), "startup", time.Since(u.started))
	if u.in.control != nil {
		u.startProbation()
	}
	return nil
}

// Upgrade is UpgradeWith with zero UpgradeOptions: the binary, arguments
// and bake window of Options.
func (u *Upgrader) Upgrade(ctx context.Context) error {
	return u.UpgradeWith(ctx, UpgradeOptions{})
}

// UpgradeWith starts a new process from o.Binary with this process's
// listeners and returns once it is ready and this process stopped accepting
// (nil), or once it failed (*UpgradeError naming the cause: exit status,
// timeout, last lines of stderr), in which case it was killed and this
// process kept serving. A call while another upgrade runs fails at once with
// ErrUpgradeInProgress. If ctx ends first, the new process is killed and
// an *UpgradeError wrapping ctx.Err() is returned (errors.Is(err,
// context.Canceled) holds). With a bake window (o.BakeWindow, or
// Options.BakeWindow), a later failure of the new process makes this
// process resume (logged and counted as rolled_back); it then keeps its own
// Options, so its next Upgrade starts Options.Executable again, not the
// binary that failed.
func (u *Upgrader) UpgradeWith(ctx context.Context, o UpgradeOptions) error {
	path, args, bake, err := u.resolve(o)
	if err != nil {
		return err
	}
	u.mu.Lock()
	switch {
	case u.state == StateStarting:
		u.mu.Unlock()
		return ErrNotReady
	case u.state == StateUpgrading:
		u.mu.Unlock()
		return ErrUpgradeInProgress
	case u.state == StateBaking:
		u.mu.Unlock()
		return ErrHandedOff
	case u.state >= StateDraining:
		u.mu.Unlock()
		return ErrDraining
	case u.parentBaking:
		u.mu.Unlock()
		return ErrParentBaking
	}
	u.state = StateUpgrading
	files := make(map[fileKey]*os.File, len(u.listeners)+len(u.packets))
	for _, l := range u.listeners {
		files[l.key] = l.file
	}
	for _, p := range u.packets {
		files[p.key] = p.file
	}
	u.wg.Add(1) // the handoff, owned until the bake and drain are over
	u.mu.Unlock()

	trigger := time.Now()
	ctx, span := u.tracer.Start(ctx, "graceful.upgrade", trace.WithAttributes(attribute.String("graceful.executable", path)))
	defer span.End()
	u.notifyReloading()
	u.log.Info("upgrade started", "path", path, "bake_window", bake)
	fail := func(err error) error {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
		span.SetAttributes(attribute.String("graceful.outcome", OutcomeFailed))
		u.mu.Lock()
		serving := u.state == StateUpgrading
		if serving {
			u.state = StateReady
		}
		u.child = nil
		u.mu.Unlock()
		if serving {
			// The new process may have written its PID before it
			// failed, and told systemd it was the main process.
			if err := writePIDFile(u.opts.PIDFile); err != nil {
				u.log.Error("writing PID file", "err", err)
			}
			u.notifyMain()
		}
		u.met.upgrade(OutcomeFailed)
		u.log.Error("upgrade failed; still serving", "err", err)
		u.wg.Done()
		return err
	}
	c, namesW, err := startChild(path, args, files, bake > 0)
	if err != nil {
		return fail(&UpgradeError{Path: path, ExitStatus: -1, Err: fmt.Errorf("%w: %w", ErrStart, err)})
	}
	spawned := time.Since(trigger)
	u.mu.Lock()
	u.child = c
	u.mu.Unlock()
	failChild := fail
	fail = func(err error) error {
		// Nobody is left to learn of this process's exit through it.
		namesW.Close()
		return failChild(err)
	}

	childErr := func(cause error) error {
		status := -1
		if c.state != nil {
			status = c.state.ExitCode()
		}
		e := &UpgradeError{Path: path, PID: c.pid, ExitStatus: status, Stderr: c.stderrTail(u.opts.StderrLines), Err: cause}
		c.control.Close()
		c.copyStderr()
		return e
	}
	kill := func() {
		_ = c.proc.Kill()
		<-c.exited
	}
	timer := time.NewTimer(u.opts.UpgradeTimeout)
	defer timer.Stop()
	var startup time.Duration
	select {
	case startup = <-c.ready:
	case <-c.exited:
		// A ready notice written just before exiting still counts as a
		// failure: the process is gone.
		return fail(childErr(fmt.Errorf("%w: %s", ErrChildExited, c.state)))
	case <-timer.C:
		kill()
		return fail(childErr(fmt.Errorf("%w (%s); killed", ErrChildTimeout, u.opts.UpgradeTimeout)))
	case <-u.stopping:
		kill()
		return fail(childErr(ErrDraining))
	case <-ctx.Done():
		kill()
		// The cause stays visible to errors.Is (context.Canceled or
		// DeadlineExceeded) and the error still names the process.
		return fail(childErr(fmt.Errorf("caller gave up before the new process was ready (%w); killed", ctx.Err())))
	}
	// Paused before anything else: from here the new process is the only
	// acceptor, and no connection is dropped because both hold the socket.
	select {
	case <-c.exited:
		// Ready and already gone: never hand off to a dead process.
		return fail(childErr(fmt.Errorf("%w: %s", ErrChildExited, c.state)))
	default:
	}
	u.mu.Lock()
	if u.state != StateUpgrading {
		// Shutdown or Close won the race with the readiness notice.
		u.mu.Unlock()
		kill()
		return fail(childErr(ErrDraining))
	}
	u.handedOff = true
	if bake > 0 {
		u.state = StateBaking
	} else {
		u.state = StateDraining
	}
	ls := append([]*listener(nil), u.listeners...)
	u.mu.Unlock()
	for _, l := range ls {
		l.pause()
	}
	u.mu.Lock()
	// Closed only by this process's exit, which is how the new process
	// learns of it.
	u.keep = append(u.keep, namesW)
	u.mu.Unlock()
	c.copyStderr()
	total := time.Since(trigger)
	handoff := max(total-startup, 0)
	u.met.handedOff(handoff)
	span.SetAttributes(attribute.Int("graceful.child_pid", c.pid), attribute.String("graceful.outcome", "handed_off"),
		attribute.Float64("graceful.handoff_seconds", handoff.Seconds()))
	u.log.Info("handed off", "child_pid", c.pid, "total", total, "spawn", spawned, "child_startup", startup, "handoff", handoff)
	go u.afterHandoff(c, bake)
	return nil
}

// resolve fills o's zero fields from Options and returns the binary, its
// arguments and the bake window of one upgrade (0: none).
func (u *Upgrader) resolve(o UpgradeOptions) (path string, args []string, bake time.Duration, err error) {
	path, args, bake = u.path, u.args, u.opts.BakeWindow
	if o.Binary != "" {
		if path, err = filepath.Abs(o.Binary); err != nil {
			return "", nil, 0, fmt.Errorf("graceful: UpgradeOptions.Binary %q: %w", o.Binary, err)
		}
	}
	if o.Args != nil {
		args = o.Args
	}
	switch {
	case o.BakeWindow < 0:
		bake = 0
	case o.BakeWindow > 0:
		bake = o.BakeWindow
	}
	return path, args, bake, nil
}

// afterHandoff drains, watches the bake window, and either resumes or ends
// this process's serving.
func (u *Upgrader) afterHandoff(c *child, bake time.Duration) {
	defer u.wg.Done()
	deadline := time.Now().Add(u.opts.DrainTimeout)
	cancelSoft := make(chan struct{})
	softDone := make(chan drainResult, 1)
	go func() { softDone <- u.drain.soft(deadline, cancelSoft) }()

	if bake > 0 && u.bake(c, bake) {
		close(cancelSoft)
		<-softDone
		return
	}
	c.control.Close()
	if bake <= 0 {
		u.met.upgrade(OutcomeSucceeded)
	}
	r := <-softDone
	u.finish(deadline, r, false)
}

// bake watches the new process for the bake window and reports whether
// this process took serving back.
func (u *Upgrader) bake(c *child, window time.Duration) (rolledBack bool) {
	msgs := make(chan byte)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		defer close(msgs)
		var b [1]byte
		for {
			if _, err := c.control.Read(b[:]); err != nil {
				return
			}
			msgs <- b[0]
		}
	}()
	defer func() {
		c.control.Close()
		for range msgs {
		}
		<-readerDone
	}()
	timer := time.NewTimer(window)
	defer timer.Stop()
	in := (<-chan byte)(msgs)
	for {
		select {
		case <-c.exited:
			return u.rollback(c, fmt.Sprintf("new process exited inside the bake window: %s", c.state))
		case m, ok := <-in:
			if !ok {
				// The new process does not speak the bake protocol
				// (tableflip) or closed it: only its exit is watched.
				in = nil
				continue
			}
			switch m {
			case msgRollback:
				if !u.rollback(c, "new process gave serving back inside the bake window (it failed its readiness check, called Rollback, or is leaving)") {
					// No ack: the new process sees this one let go of the
					// control socket and serves on.
					return false
				}
				_, _ = c.control.Write([]byte{msgAck})
				return true
			case msgPromote:
				u.log.Info("new process promoted: bake window ended early", "child_pid", c.pid)
				u.met.upgrade(OutcomeSucceeded)
				return false
			}
		case <-timer.C:
			u.log.Info("bake window passed", "child_pid", c.pid)
			u.met.upgrade(OutcomeSucceeded)
			return false
		case <-u.stopping:
			u.met.upgrade(OutcomeSucceeded)
			return false
		}
	}
}

// Messages on the control socket. The parent closing it means "no
// fallback any more" (bake window over, or parent gone).
const (
	msgRollback = 'g' // child to parent: take serving back
	msgAck      = 'k' // parent to child: serving taken back
	msgPromote  = 'e' // child to parent: promoted, stop baking and drain
)

// rollback makes this process the acceptor again and reports whether it
// did. Once Shutdown or Close has begun it refuses: Shutdown left the drain
// to the handoff (the state was baking), so resuming here would leave
// nobody to finish it and Shutdown, and SIGTERM, would wait forever. The
// select in bake may pick the child's exit over stopping when both are
// ready, which is why the check is here, under u.mu, and not there.
func (u *Upgrader) rollback(c *child, why string) bool {
	u.mu.Lock()
	select {
	case <-u.stopping:
		u.mu.Unlock()
		u.met.upgrade(OutcomeSucceeded)
		u.log.Warn("not resuming: shutting down", "child_pid", c.pid, "reason", why)
		return false
	default:
	}
	for _, l := range u.listeners {
		l.resume()
	}
	u.state = StateReady
	u.child = nil
	u.handedOff = false
	close(u.resumed)
	u.resumed = make(chan struct{})
	u.mu.Unlock()
	u.drain.resume()
	u.met.upgrade(OutcomeRolledBack)
	if err := writePIDFile(u.opts.PIDFile); err != nil {
		u.log.Error("writing PID file", "err", err)
	}
	u.notifyMain()
	u.log.Warn("rolled back: serving again", "child_pid", c.pid, "reason", why)
	return true
}

// finish ends serving for good: drain what is left, stop servers, close
// this process's descriptors.
func (u *Upgrader) finish(deadline time.Time, r drainResult, lastOwner bool) {
	u.mu.Lock()
	// A socket path still served by a successor or a baking predecessor
	// stays.
	lastOwner = lastOwner && !u.handedOff && !u.parentBaking
	u.state = StateDraining
	ls := append([]*listener(nil), u.listeners...)
	ps := append([]*packetConn(nil), u.packets...)
	u.mu.Unlock()
	for _, l := range ls {
		l.pause()
	}
	forced := u.drain.final(deadline)
	r.forced += forced
	r.took = max(r.took, 0)
	for _, l := range ls {
		_ = l.Close()
		if lastOwner {
			if ul, ok := l.Listener.(*net.UnixListener); ok {
				_ = os.Remove(ul.Addr().String())
			}
		}
	}
	for _, p := range ps {
		_ = p.Close()
	}
	u.met.drained(r)
	u.log.Info("drained", "drained", r.drained, "forced", r.forced, "took", r.took)
	u.mu.Lock()
	u.state = StateStopped
	u.mu.Unlock()
	u.doneOnce.Do(func() { close(u.done) })
}

// startProbation runs in a new process whose parent bakes: it re-runs the
// readiness check and gives serving back if it fails.
func (u *Upgrader) startProbation() {
	u.mu.Lock()
	probDone := u.probDone // made by Ready
	u.mu.Unlock()
	ctl, err := net.FileConn(u.in.control)
	u.in.control.Close()
	if err != nil {
		u.mu.Lock()
		u.parentBaking = false
		u.mu.Unlock()
		close(probDone)
		return
	}
	u.mu.Lock()
	if u.state >= StateDraining {
		u.mu.Unlock()
		ctl.Close()
		close(probDone)
		return
	}
	u.wg.Add(2)
	u.mu.Unlock()
	parentGone := make(chan struct{})
	go func() {
		defer u.wg.Done()
		defer close(parentGone)
		var b [1]byte
		for {
			if _, err := ctl.Read(b[:]); err != nil {
				break
			}
			if b[0] == msgAck {
				u.giveBackAck <- true
			}
		}
		u.mu.Lock()
		u.parentBaking = false
		u.mu.Unlock()
		u.log.Info("previous process no longer a fallback")
	}()
	go func() {
		defer u.wg.Done()
		defer close(probDone)
		defer ctl.Close()
		tick := time.NewTicker(u.opts.CheckInterval)
		defer tick.Stop()
		// giveBack asks the parent to take serving back and, once it
		// has, drains this process. It reports whether serving went back.
		giveBack := func() (bool, error) {
			if _, err := ctl.Write([]byte{msgRollback}); err != nil {
				return false, fmt.Errorf("%w: %w", ErrNoFallback, err)
			}
			select {
			case <-u.giveBackAck:
				return true, nil
			case <-parentGone:
				// The parent acks and then closes the socket, so both
				// may be ready here and select picks either; the ack
				// is queued before parentGone closes, so look for it.
				select {
				case <-u.giveBackAck:
					return true, nil
				default:
				}
				u.log.Warn("previous process gone before taking serving back; serving on")
				return false, ErrNoFallback
			case <-u.closing:
				return false, ErrDraining
			}
		}
		for {
			select {
			case <-parentGone:
				return
			case <-u.closing:
				return
			case req := <-u.bakeReqs:
				if req.msg == msgPromote {
					if _, err := ctl.Write([]byte{msgPromote}); err != nil {
						// The parent closed its end: it stopped baking anyway.
						u.log.Debug("end of bake not delivered", "err", err)
					}
					// The parent closes the control socket once it stops
					// being a fallback; from then on it only drains.
					select {
					case <-parentGone:
						req.done <- nil
					case <-u.closing:
						req.done <- ErrDraining
					}
					return
				}
				u.log.Warn("giving serving back to the previous process", "reason", req.why)
				ok, err := giveBack()
				req.done <- err
				if ok {
					u.handBack()
				}
				return
			case <-tick.C:
			}
			if u.opts.Check == nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), u.opts.CheckInterval)
			err := u.opts.Check(ctx)
			cancel()
			if err == nil {
				continue
			}
			u.log.Error("readiness check failed while the previous process bakes; giving serving back", "err", err)
			ok, err := giveBack()
			if ok {
				u.handBack()
				return
			}
			if errors.Is(err, ErrNoFallback) || errors.Is(err, ErrDraining) {
				return
			}
		}
	}()
}

// bakeReq is a Promote or Rollback waiting for the probation goroutine,
// which owns the control socket.
type bakeReq struct {
	msg  byte
	why  string // for the log, with msgRollback
	done chan error
}

// Promote, called in a new process whose predecessor still bakes, ends the
// bake window now: the previous process stops being a fallback, drains and
// exits, as when its window elapses. It returns once the previous process
// has let go, or ctx.Err(). Without a baking predecessor (no bake window,
// window already over, or Promote called before) it returns nil at once,
// so calling it again is harmless.
func (u *Upgrader) Promote(ctx context.Context) error {
	return u.bakeRequest(ctx, msgPromote, "")
}

// Rollback, called in a new process whose predecessor still bakes, gives
// serving back to it on purpose, the path a failed readiness check takes:
// the previous process resumes accepting (its Resumed channel closes) and
// this one stops accepting, drains and finishes (Done closes). It returns
// once the previous process has taken serving back, or ctx.Err(). Without
// a baking predecessor it fails with ErrNoFallback and this process keeps
// serving.
func (u *Upgrader) Rollback(ctx context.Context) error {
	return u.bakeRequest(ctx, msgRollback, "Rollback called")
}

// leave gives serving back when this process leaves inside its
// predecessor's bake window (Shutdown, Close), so that leaving never takes
// the service down: it reports whether the predecessor took serving back,
// in which case this process drains and Done closes.
func (u *Upgrader) leave(ctx context.Context, why string) bool {
	return u.bakeRequest(ctx, msgRollback, why) == nil
}

func (u *Upgrader) bakeRequest(ctx context.Context, msg byte, why string) error {
	u.mu.Lock()
	probDone, baking := u.probDone, u.parentBaking
	u.mu.Unlock()
	if probDone == nil || !baking {
		if msg == msgPromote {
			return nil
		}
		return ErrNoFallback
	}
	req := bakeReq{msg: msg, why: why, done: make(chan error, 1)}
	select {
	case u.bakeReqs <- req:
	case <-probDone:
		if msg == msgPromote {
			return nil
		}
		return ErrNoFallback
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Resumed returns a channel that is closed the next time this process
// takes serving back from a new process inside the bake window (the new
// process exited or left, failed its Check, or called Rollback). Take the channel
// before calling Upgrade; each resume closes the channel handed out until
// then and starts a new one.
func (u *Upgrader) Resumed() <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.resumed
}

// handBack stops this process's serving after its parent took it back.
func (u *Upgrader) handBack() {
	u.mu.Lock()
	if u.state >= StateDraining {
		u.mu.Unlock()
		return
	}
	u.state = StateDraining
	ls := append([]*listener(nil), u.listeners...)
	u.mu.Unlock()
	for _, l := range ls {
		l.pause()
	}
	deadline := time.Now().Add(u.opts.DrainTimeout)
	r := u.drain.soft(deadline, nil)
	u.finish(deadline, r, false)
}

// Shutdown drains and stops this process without a successor: readiness
// turns not-ready, DrainDelay passes while still accepting, accepting stops,
// in-flight requests finish, and what is open at the drain deadline (the
// earlier of ctx's deadline and DrainTimeout) is closed. During a bake it
// gives up the fallback. In a new process whose predecessor still bakes it
// gives serving back first, as Rollback does: the predecessor resumes, and
// this process drains without DrainDelay (the predecessor accepts on the
// same socket at once). To stop the whole service inside a bake window,
// stop the predecessor too (it then refuses to resume), or Promote first.
// It returns when serving ended, or ctx.Err() if ctx ended first (then
// everything is closed at once).
func (u *Upgrader) Shutdown(ctx context.Context) error {
	if u.leave(ctx, "shutting down inside the bake window") {
		u.stopOnce.Do(func() { close(u.stopping) })
		select {
		case <-u.done:
			return nil
		case <-ctx.Done():
			u.Close()
			return ctx.Err()
		}
	}
	u.mu.Lock()
	st := u.state
	wasStopping := false
	select {
	case <-u.stopping:
		wasStopping = true
	default:
	}
	u.stopOnce.Do(func() { close(u.stopping) })
	owned := !wasStopping && (st == StateStarting || st == StateReady || st == StateUpgrading)
	if owned {
		u.state = StateDraining
		u.wg.Add(1)
	}
	u.mu.Unlock()
	if owned {
		u.notify(daemon.SdNotifyStopping)
		u.log.Info("shutting down", "delay", u.opts.DrainDelay)
		go func() {
			defer u.wg.Done()
			// An upgrade in flight sees stopping and kills its new
			// process; nothing waits for that: the listeners were never
			// handed over (the state was not yet baking or draining, or
			// Shutdown would not own the drain), so they can be drained
			// now. Only DrainDelay, or Close, is waited for.
			select {
			case <-time.After(u.opts.DrainDelay):
			case <-u.closing:
			}
			deadline := time.Now().Add(u.opts.DrainTimeout)
			if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
				deadline = d
			}
			u.mu.Lock()
			ls := append([]*listener(nil), u.listeners...)
			u.mu.Unlock()
			for _, l := range ls {
				l.pause()
			}
			r := u.drain.soft(deadline, nil)
			u.finish(deadline, r, true)
		}()
	}
	select {
	case <-u.done:
		return nil
	case <-ctx.Done():
		u.Close()
		return ctx.Err()
	}
}

// Close stops at once: listeners and every tracked connection are closed,
// a new process still starting is killed, and owned goroutines are waited
// for. Unix socket paths are removed unless a successor (or a baking
// predecessor) still serves them. Idempotent.
//
// In a new process whose predecessor still bakes, Close first gives serving
// back and drains, for at most DrainTimeout: the predecessor resumes, so
// that the usual deferred Close on an error path after Ready costs no
// request and leaves the service running on the previous process.
func (u *Upgrader) Close() error {
	u.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), u.opts.DrainTimeout)
		if u.leave(ctx, "closing inside the bake window") {
			select {
			case <-u.done:
			case <-ctx.Done():
			}
		}
		cancel()
		u.stopOnce.Do(func() { close(u.stopping) })
		close(u.closing)
		u.mu.Lock()
		u.state = StateDraining
		ls := append([]*listener(nil), u.listeners...)
		ps := append([]*packetConn(nil), u.packets...)
		last := !u.handedOff && !u.parentBaking
		u.mu.Unlock()
		// Servers first, so that Serve returns http.ErrServerClosed
		// rather than the closed listener's error.
		select {
		case <-u.done:
			// Serving already ended (Shutdown or handoff): nothing to stop.
		default:
			u.drain.stopNow()
			u.drain.forceClose()
		}
		for _, l := range ls {
			_ = l.Close()
			if ul, ok := l.Listener.(*net.UnixListener); ok && last {
				_ = os.Remove(ul.Addr().String())
			}
		}
		for _, p := range ps {
			_ = p.Close()
		}
		u.releaseSignals()
		u.doneOnce.Do(func() { close(u.done) })
	})
	u.wg.Wait()
	u.mu.Lock()
	u.state = StateStopped
	u.mu.Unlock()
	return nil
}
