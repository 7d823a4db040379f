package graceful

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// This file is the new process's side: announcing readiness and, while the
// predecessor bakes, the probation that gives serving back when this
// process fails its Check, is rolled back, or leaves.

// Ready runs the readiness check and then announces this process: to its
// parent, which stops accepting, or to systemd on a first start. Inherited
// descriptors that no Listen claimed are closed. It fails with ErrCheck
// (wrapping the check's error) without announcing anything; exit non-zero
// then, and the parent keeps serving.
func (u *Upgrader) Ready(ctx context.Context) error {
	switch st := u.State(); {
	case st >= StateDraining:
		return ErrDraining
	case st != StateStarting:
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
	if !u.transitionLocked(StateReady, StateStarting) {
		// Shutdown or Close came first, or another Ready.
		st := u.state
		u.mu.Unlock()
		if st >= StateDraining {
			return ErrDraining
		}
		return nil
	}
	for k, f := range u.inherited {
		f.Close()
		delete(u.inherited, k)
	}
	for _, f := range u.activated {
		f.Close()
	}
	u.activated = nil
	if u.in != nil && u.in.control != nil {
		// Set up before the listeners resume: a Rollback or Promote that
		// a request triggers as soon as this process serves must find
		// the probation (it waits for its goroutine to start) rather
		// than fail with ErrNoFallback.
		u.prob = newProbation()
	}
	for _, l := range u.listeners {
		l.resume()
	}
	u.mu.Unlock()
	if err := writePIDFile(u.opts.PIDFile); err != nil {
		u.log.Error("writing PID file", "err", err)
	}
	if u.in == nil {
		u.notifyReady()
		u.log.Info("ready")
		return nil
	}
	u.in.restoreStderr()
	if err := u.in.sendReady(time.Since(u.started)); err != nil {
		// The parent is gone (killed mid-handoff): this process is the
		// only one left and serves alone.
		u.log.Warn("parent did not take the readiness notice; serving alone", "err", err)
		u.dropFallback()
	}
	u.notifyMain()
	u.log.Info("ready", "parent_pid", os.Getppid(), "startup", time.Since(u.started))
	if u.in.control != nil {
		u.startProbation()
	}
	return nil
}

// probation is a new process's side of its predecessor's bake window. The
// control socket belongs to its two goroutines: readControl takes the
// predecessor's acks and sees it let go (EOF), probe re-runs the Check and
// carries out requests.
type probation struct {
	reqs chan bakeReq  // Promote, Rollback and leaving, to probe
	ack  chan struct{} // the predecessor took serving back (buffered)
	done chan struct{} // closed when probe has ended
}

func newProbation() *probation {
	return &probation{reqs: make(chan bakeReq), ack: make(chan struct{}, 1), done: make(chan struct{})}
}

// bakeReq is a Promote or Rollback waiting for probe.
type bakeReq struct {
	msg  byte
	why  string // for the log, with msgRollback
	done chan error
}

// dropFallback records that the predecessor no longer bakes.
func (u *Upgrader) dropFallback() {
	u.mu.Lock()
	u.parentBaking = false
	u.mu.Unlock()
}

// startProbation runs in a new process whose parent bakes: it re-runs the
// readiness check and gives serving back if it fails.
func (u *Upgrader) startProbation() {
	u.mu.Lock()
	p := u.prob // made by Ready
	u.mu.Unlock()
	ctl, err := net.FileConn(u.in.control)
	u.in.control.Close()
	if err != nil {
		u.dropFallback()
		close(p.done)
		return
	}
	u.mu.Lock()
	if u.state >= StateDraining {
		u.mu.Unlock()
		ctl.Close()
		close(p.done)
		return
	}
	u.wg.Add(2)
	u.mu.Unlock()
	parentGone := make(chan struct{})
	go u.readControl(ctl, p, parentGone)
	go u.probe(ctl, p, parentGone)
}

// readControl reads the predecessor's messages until it lets go of the
// control socket, which it does when it stops being a fallback.
func (u *Upgrader) readControl(ctl net.Conn, p *probation, parentGone chan struct{}) {
	defer u.wg.Done()
	defer close(parentGone)
	var b [1]byte
	for {
		if _, err := ctl.Read(b[:]); err != nil {
			break
		}
		if b[0] == msgAck {
			select {
			case p.ack <- struct{}{}:
			default:
			}
		}
	}
	u.dropFallback()
	u.log.Info("previous process no longer a fallback")
}

// probe re-runs the Check every CheckInterval and carries out Promote,
// Rollback and leaving, until the predecessor lets go, serving is given
// back, or Close.
func (u *Upgrader) probe(ctl net.Conn, p *probation, parentGone <-chan struct{}) {
	defer u.wg.Done()
	defer close(p.done)
	defer ctl.Close()
	tick := time.NewTicker(u.opts.CheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-parentGone:
			return
		case <-u.closing:
			return
		case req := <-p.reqs:
			if req.msg == msgPromote {
				req.done <- u.promote(ctl, parentGone)
				return
			}
			u.log.Warn("giving serving back to the previous process", "reason", req.why)
			ok, err := u.giveBack(ctl, p, parentGone)
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
		ok, err := u.giveBack(ctl, p, parentGone)
		if ok {
			u.handBack()
			return
		}
		if errors.Is(err, ErrNoFallback) || errors.Is(err, ErrDraining) {
			return
		}
	}
}

// promote tells the predecessor to stop baking and waits until it has let
// go of the control socket, which it does once it only drains.
func (u *Upgrader) promote(ctl net.Conn, parentGone <-chan struct{}) error {
	if _, err := ctl.Write([]byte{msgPromote}); err != nil {
		// The parent closed its end: it stopped baking anyway.
		u.log.Debug("promotion not delivered", "err", err)
	}
	select {
	case <-parentGone:
		return nil
	case <-u.closing:
		return ErrDraining
	}
}

// giveBack asks the predecessor to take serving back and reports whether
// it did (it acks, then closes the socket).
func (u *Upgrader) giveBack(ctl net.Conn, p *probation, parentGone <-chan struct{}) (bool, error) {
	if _, err := ctl.Write([]byte{msgRollback}); err != nil {
		return false, fmt.Errorf("%w: %w", ErrNoFallback, err)
	}
	select {
	case <-p.ack:
		return true, nil
	case <-parentGone:
		// The ack is queued before parentGone closes, and select picks
		// either when both are ready: look for it.
		select {
		case <-p.ack:
			return true, nil
		default:
		}
		u.log.Warn("previous process gone before taking serving back; serving on")
		return false, ErrNoFallback
	case <-u.closing:
		return false, ErrDraining
	}
}

// handBack stops this process's serving after its predecessor took it
// back.
func (u *Upgrader) handBack() {
	if !u.transition(StateDraining, StateReady, StateUpgrading) {
		return
	}
	u.pauseListeners()
	deadline := time.Now().Add(u.opts.DrainTimeout)
	r := u.drain.soft(deadline, nil)
	u.finish(deadline, r, false)
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
	if err := handoffSupported(); err != nil {
		return err
	}
	u.mu.Lock()
	p, baking := u.prob, u.parentBaking
	u.mu.Unlock()
	if p == nil || !baking {
		if msg == msgPromote {
			return nil
		}
		return ErrNoFallback
	}
	req := bakeReq{msg: msg, why: why, done: make(chan error, 1)}
	select {
	case p.reqs <- req:
	case <-p.done:
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
