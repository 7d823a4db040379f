package graceful

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// This file is the old process's side of an upgrade: starting the new
// process, handing the listeners off, the bake window and resuming.

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
	p, err := u.plan(o)
	if err != nil {
		return err
	}
	if err := handoffSupported(); err != nil {
		return err
	}
	files, err := u.beginUpgrade()
	if err != nil {
		return err
	}
	trigger := time.Now()
	ctx, span := u.tracer.Start(ctx, "graceful.upgrade", trace.WithAttributes(attribute.String("graceful.executable", p.path)))
	defer span.End()
	u.notifyReloading()
	u.log.Info("upgrade started", "path", p.path, "bake_window", p.bake)

	c, err := u.startNew(ctx, p, files)
	if err != nil {
		u.upgradeFailed(span, err)
		return err
	}
	next := StateDraining
	if p.bake > 0 {
		next = StateBaking
	}
	u.mu.Lock()
	if !u.transitionLocked(next, StateUpgrading) {
		// Shutdown or Close won the race with the readiness notice.
		u.mu.Unlock()
		err := c.abandon(ErrDraining, u.opts.StderrLines)
		u.upgradeFailed(span, err)
		return err
	}
	u.handedOff = true
	// Closed only by this process's exit, which is how the new process
	// learns of it.
	u.keep = append(u.keep, c.namesW)
	u.mu.Unlock()
	// From here the new process is the only acceptor, and no connection
	// is dropped: both processes hold the socket.
	u.pauseListeners()
	c.copyStderr()
	total := time.Since(trigger)
	handoff := max(total-c.startup, 0)
	u.met.handedOff(handoff)
	span.SetAttributes(attribute.Int("graceful.child_pid", c.pid), attribute.String("graceful.outcome", "handed_off"),
		attribute.Float64("graceful.handoff_seconds", handoff.Seconds()))
	u.log.Info("handed off", "child_pid", c.pid, "total", total, "spawn", c.spawned, "child_startup", c.startup, "handoff", handoff)
	go u.afterHandoff(c, p.bake)
	return nil
}

// upgradePlan is one upgrade's binary, arguments and bake window (zero:
// none).
type upgradePlan struct {
	path string
	args []string
	bake time.Duration
}

// plan fills o's zero fields from Options.
func (u *Upgrader) plan(o UpgradeOptions) (upgradePlan, error) {
	p := upgradePlan{path: u.path, args: u.args, bake: u.opts.BakeWindow}
	if o.Binary != "" {
		abs, err := filepath.Abs(o.Binary)
		if err != nil {
			return p, fmt.Errorf("graceful: UpgradeOptions.Binary %q: %w", o.Binary, err)
		}
		p.path = abs
	}
	if o.Args != nil {
		p.args = o.Args
	}
	switch {
	case o.BakeWindow < 0:
		p.bake = 0
	case o.BakeWindow > 0:
		p.bake = o.BakeWindow
	}
	return p, nil
}

// beginUpgrade moves a ready process to upgrading and returns the
// descriptors to hand down, or the sentinel saying why it may not upgrade.
func (u *Upgrader) beginUpgrade() (map[fileKey]*os.File, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.state == StateStarting:
		return nil, ErrNotReady
	case u.state == StateUpgrading:
		return nil, ErrUpgradeInProgress
	case u.state == StateBaking:
		return nil, ErrHandedOff
	case u.state >= StateDraining:
		return nil, ErrDraining
	case u.parentBaking:
		return nil, ErrParentBaking
	}
	u.transitionLocked(StateUpgrading, StateReady)
	files := make(map[fileKey]*os.File, len(u.listeners)+len(u.packets))
	for _, l := range u.listeners {
		files[l.key] = l.file
	}
	for _, p := range u.packets {
		files[p.key] = p.file
	}
	u.wg.Add(1) // the handoff, owned until the bake and drain are over
	return files, nil
}

// startNew starts the new process and waits for its readiness notice. On
// failure the process has been killed and reaped, and the error is an
// *UpgradeError naming it.
func (u *Upgrader) startNew(ctx context.Context, p upgradePlan, files map[fileKey]*os.File) (*child, error) {
	c, err := startChild(p.path, p.args, files, p.bake > 0)
	if err != nil {
		return nil, &UpgradeError{Path: p.path, ExitStatus: -1, Err: fmt.Errorf("%w: %w", ErrStart, err)}
	}
	lines := u.opts.StderrLines
	timer := time.NewTimer(u.opts.UpgradeTimeout)
	defer timer.Stop()
	select {
	case <-c.ready:
	case <-c.exited:
		// A ready notice written just before exiting still counts as a
		// failure: the process is gone.
		return nil, c.abandon(fmt.Errorf("%w: %s", ErrChildExited, c.state), lines)
	case <-timer.C:
		return nil, c.abandon(fmt.Errorf("%w (%s); killed", ErrChildTimeout, u.opts.UpgradeTimeout), lines)
	case <-u.stopping:
		return nil, c.abandon(ErrDraining, lines)
	case <-ctx.Done():
		// The cause stays visible to errors.Is (context.Canceled or
		// DeadlineExceeded) and the error still names the process.
		return nil, c.abandon(fmt.Errorf("caller gave up before the new process was ready (%w); killed", ctx.Err()), lines)
	}
	select {
	case <-c.exited:
		// Ready and already gone: never hand off to a dead process.
		return nil, c.abandon(fmt.Errorf("%w: %s", ErrChildExited, c.state), lines)
	default:
	}
	return c, nil
}

// upgradeFailed records a failed upgrade; the process serves on.
func (u *Upgrader) upgradeFailed(span trace.Span, err error) {
	span.RecordError(err)
	span.SetStatus(codes.Error, err.Error())
	span.SetAttributes(attribute.String("graceful.outcome", OutcomeFailed))
	if u.transition(StateReady, StateUpgrading) {
		// The new process may have written its PID before it failed, and
		// told systemd it was the main process.
		u.announceMain()
	}
	u.met.upgrade(OutcomeFailed)
	u.log.Error("upgrade failed; still serving", "err", err)
	u.wg.Done()
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
func (u *Upgrader) bake(c *child, window time.Duration) (resumed bool) {
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
			return u.resume(c, fmt.Sprintf("new process exited inside the bake window: %s", c.state))
		case m, ok := <-in:
			if !ok {
				// The new process does not speak the bake protocol
				// (tableflip) or closed it: only its exit is watched.
				in = nil
				continue
			}
			switch m {
			case msgRollback:
				if !u.resume(c, "new process gave serving back inside the bake window (it failed its readiness check, called Rollback, or is leaving)") {
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

// resume makes this process the acceptor again and reports whether it
// did. Once Shutdown or Close has begun it refuses: Shutdown left the drain
// to the handoff (the state was baking), so resuming here would leave
// nobody to finish it and Shutdown, and SIGTERM, would wait forever. The
// select in bake may pick the child's exit over stopping when both are
// ready, which is why the check is here, under u.mu, and not there.
func (u *Upgrader) resume(c *child, why string) bool {
	u.mu.Lock()
	select {
	case <-u.stopping:
		u.mu.Unlock()
		u.met.upgrade(OutcomeSucceeded)
		u.log.Warn("not resuming: shutting down", "child_pid", c.pid, "reason", why)
		return false
	default:
	}
	if !u.transitionLocked(StateReady, StateBaking) {
		u.mu.Unlock()
		return false
	}
	for _, l := range u.listeners {
		l.resume()
	}
	u.handedOff = false
	close(u.resumed)
	u.resumed = make(chan struct{})
	u.mu.Unlock()
	u.drain.resume()
	u.met.upgrade(OutcomeRolledBack)
	u.announceMain()
	u.log.Warn("rolled back: serving again", "child_pid", c.pid, "reason", why)
	return true
}

// announceMain tells the PID file and systemd that this process serves.
func (u *Upgrader) announceMain() {
	if err := writePIDFile(u.opts.PIDFile); err != nil {
		u.log.Error("writing PID file", "err", err)
	}
	u.notifyMain()
}
