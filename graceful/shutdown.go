package graceful

import (
	"context"
	"net"
	"os"
	"time"
)

// This file ends serving: Shutdown's drain, Close, and finish, which every
// path that ends serving goes through (a handoff, giving serving back,
// Shutdown).

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
		return u.awaitDone(ctx)
	}
	u.mu.Lock()
	wasStopping := false
	select {
	case <-u.stopping:
		wasStopping = true
	default:
	}
	u.stopOnce.Do(func() { close(u.stopping) })
	// Shutdown owns the drain unless one is under way: a handoff's (baking
	// or draining), a hand-back's, or that of an earlier Shutdown or Close.
	owned := !wasStopping && u.transitionLocked(StateDraining, StateStarting, StateReady, StateUpgrading)
	if owned {
		u.wg.Add(1)
	}
	u.mu.Unlock()
	if owned {
		u.notifyStopping()
		u.log.Info("shutting down", "delay", u.opts.DrainDelay)
		go u.shutdownDrain(ctx)
	}
	return u.awaitDone(ctx)
}

// shutdownDrain is Shutdown's drain. An upgrade in flight sees stopping and
// kills its new process; nothing waits for that: the listeners were never
// handed over (the state was not yet baking or draining, or Shutdown would
// not own the drain), so they can be drained now. Only DrainDelay, or
// Close, is waited for.
func (u *Upgrader) shutdownDrain(ctx context.Context) {
	defer u.wg.Done()
	delay := time.NewTimer(u.opts.DrainDelay)
	defer delay.Stop()
	select {
	case <-delay.C:
	case <-u.closing:
	}
	deadline := time.Now().Add(u.opts.DrainTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	u.pauseListeners()
	r := u.drain.soft(deadline, nil)
	u.finish(deadline, r, true)
}

// awaitDone waits for serving to end, or closes everything when ctx ends
// first.
func (u *Upgrader) awaitDone(ctx context.Context) error {
	select {
	case <-u.done:
		return nil
	case <-ctx.Done():
		u.Close()
		return ctx.Err()
	}
}

// finish ends serving for good: drain what is left, stop servers, close
// this process's descriptors. lastOwner says whether Unix socket paths may
// be removed; they stay while a successor or a baking predecessor serves
// them.
func (u *Upgrader) finish(deadline time.Time, r drainResult, lastOwner bool) {
	u.mu.Lock()
	lastOwner = lastOwner && !u.handedOff && !u.parentBaking
	u.transitionLocked(StateDraining, StateStarting, StateReady, StateUpgrading, StateBaking)
	u.mu.Unlock()
	u.pauseListeners()
	start := time.Now()
	r.forced += u.drain.final(deadline)
	// The final wait (gRPC's GracefulStop, HTTP/2 shutdown) is part of the
	// drain; a bake window between the two parts is not.
	r.took += time.Since(start)
	u.closeSockets(lastOwner)
	u.met.drained(r)
	u.log.Info("drained", "drained", r.drained, "forced", r.forced, "took", r.took)
	u.transition(StateStopped, StateDraining)
	u.finishOnce()
}

// closeSockets closes this process's descriptors of every socket, and
// removes Unix socket paths when removePaths is set.
func (u *Upgrader) closeSockets(removePaths bool) {
	u.mu.Lock()
	ls := append([]*listener(nil), u.listeners...)
	ps := append([]*packetConn(nil), u.packets...)
	u.mu.Unlock()
	for _, l := range ls {
		_ = l.Close()
		if ul, ok := l.Listener.(*net.UnixListener); ok && removePaths {
			_ = os.Remove(ul.Addr().String())
		}
	}
	for _, p := range ps {
		_ = p.Close()
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
		u.transitionLocked(StateDraining, StateStarting, StateReady, StateUpgrading, StateBaking)
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
		u.closeSockets(last)
		u.releaseSignals()
		u.finishOnce()
	})
	u.wg.Wait()
	u.transition(StateStopped, StateDraining)
	return nil
}
