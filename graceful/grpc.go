package graceful

import (
	"context"
	"sync"
)

// This file drains gRPC servers without importing gRPC: the drainer knows
// them through GRPCServer and Resumable.

// GRPCServer is what draining needs from a *grpc.Server, so that gRPC fits
// without this package importing it.
type GRPCServer interface {
	// GracefulStop stops accepting, lets pending RPCs finish and returns.
	GracefulStop()
	// Stop closes every connection at once.
	Stop()
}

// Resumable is a GRPCServer that can serve again after GracefulStop, such
// as graceful/grpcdrain's Server (a *grpc.Server cannot). graceful then
// stops it as soon as any drain starts, a handoff inside a bake window
// included, so that its clients get GOAWAY and move to the new process at
// once, and calls Resume if this process takes serving back.
type Resumable interface {
	GRPCServer
	// Resume serves again after GracefulStop, which may still be waiting
	// for what it drains. From then on GracefulStop and Stop apply to
	// everything the server serves, including what an earlier GracefulStop
	// still drains.
	Resume()
}

// GRPC registers a gRPC server for draining. A plain *grpc.Server is
// stopped gracefully when serving ends for good (after a bake window, its
// connections stay on the old process until then, since GracefulStop
// cannot be undone); a [Resumable] one as soon as a drain starts. Stop is
// called at the drain deadline.
func (u *Upgrader) GRPC(s GRPCServer) { u.drain.addGRPC(s) }

// grpcServer is a registered gRPC server and its graceful stop under way.
type grpcServer struct {
	s GRPCServer
	r Resumable // s, if it can serve again
	// stopped is closed when the GracefulStop under way returns; nil while
	// the server serves. Guarded by drainer.mu.
	stopped chan struct{}
}

func (d *drainer) addGRPC(s GRPCServer) {
	g := &grpcServer{s: s}
	g.r, _ = s.(Resumable)
	d.mu.Lock()
	d.grpcs = append(d.grpcs, g)
	d.mu.Unlock()
}

// gracefulStopLocked starts g's GracefulStop in a goroutine the drainer
// owns (stops), unless one is under way.
func (d *drainer) gracefulStopLocked(g *grpcServer) {
	if g.stopped != nil {
		return
	}
	done := make(chan struct{})
	g.stopped = done
	d.stops.Add(1)
	go func() {
		defer d.stops.Done()
		g.s.GracefulStop()
		close(done)
		d.poke()
	}()
}

// stopResumablesLocked starts the graceful stop of every server that can
// serve again, at the start of a soft drain.
func (d *drainer) stopResumablesLocked() {
	for _, g := range d.grpcs {
		if g.r != nil {
			d.gracefulStopLocked(g)
		}
	}
}

// stopAllGRPCLocked starts the graceful stop of every server, when serving
// ends for good.
func (d *drainer) stopAllGRPCLocked() {
	for _, g := range d.grpcs {
		d.gracefulStopLocked(g)
	}
}

// grpcStoppingLocked counts the servers whose graceful stop has not
// returned yet.
func (d *drainer) grpcStoppingLocked() int {
	n := 0
	for _, g := range d.grpcs {
		if g.stopped != nil && !closed(g.stopped) {
			n++
		}
	}
	return n
}

// stopStopping stops at once the servers whose graceful stop is still
// under way and returns how many there were.
func (d *drainer) stopStopping() int {
	d.mu.Lock()
	var gs []*grpcServer
	for _, g := range d.grpcs {
		if g.stopped != nil && !closed(g.stopped) {
			gs = append(gs, g)
		}
	}
	d.mu.Unlock()
	for _, g := range gs {
		g.s.Stop()
	}
	return len(gs)
}

// resumeGRPCLocked forgets the graceful stops of resumable servers and
// returns them, to be resumed. A stop still under way finishes by itself
// (what it stops is what served before).
func (d *drainer) resumeGRPCLocked() []Resumable {
	var rs []Resumable
	for _, g := range d.grpcs {
		if g.r != nil && g.stopped != nil {
			g.stopped = nil
			rs = append(rs, g.r)
		}
	}
	return rs
}

// awaitGRPC waits for every graceful stop under way, or stops the servers
// at ctx's deadline; it returns how many it had to stop, and returns once
// every stop goroutine has ended.
func (d *drainer) awaitGRPC(ctx context.Context) int {
	d.mu.Lock()
	var dones []chan struct{}
	for _, g := range d.grpcs {
		if g.stopped != nil {
			dones = append(dones, g.stopped)
		}
	}
	d.mu.Unlock()
	forced := 0
	var once sync.Once
	for _, done := range dones {
		select {
		case <-done:
		case <-ctx.Done():
			once.Do(func() { forced = d.stopStopping() })
			<-done
		}
	}
	d.stops.Wait()
	return forced
}

func closed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
