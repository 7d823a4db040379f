package graceful

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// GRPCServer is what draining needs from a *grpc.Server, so that gRPC fits
// without this package importing it.
type GRPCServer interface {
	// GracefulStop stops accepting, lets pending RPCs finish and returns.
	GracefulStop()
	// Stop closes every connection at once.
	Stop()
}

type drainKey struct{}

// Draining returns a channel that is closed when the process serving the
// request behind ctx starts draining; handlers of long or hijacked
// connections (websockets, streams) select on it to finish in time. It
// returns nil (never ready) for a context that does not come from a server
// registered with Upgrader.HTTP.
func Draining(ctx context.Context) <-chan struct{} {
	d, ok := ctx.Value(drainKey{}).(*drainer)
	if !ok {
		return nil
	}
	return d.draining()
}

// drainer tracks every connection a drain must wait for. It is reusable: a
// soft drain (at handoff) can be undone by resume when the successor fails
// inside the bake window.
type drainer struct {
	mu       sync.Mutex
	servers  []*httpServer
	grpc     []GRPCServer
	tracked  map[*tracked]struct{}
	drainCh  chan struct{}
	active   bool          // a drain is under way
	changed  chan struct{} // poked (non-blocking) when a connection goes away
	stopped  chan struct{} // closed by stopNow
	stopOnce sync.Once
}

type httpServer struct {
	srv   *http.Server
	conns map[net.Conn]connState // guarded by drainer.mu
}

type connState struct {
	st    http.ConnState
	since time.Time
}

// newConnIdleAfter: a connection that sent nothing for this long since it
// was accepted (a browser's preconnect) counts as idle and is closed by a
// drain, as http.Server.Shutdown does.
const newConnIdleAfter = 5 * time.Second

type tracked struct {
	c      io.Closer
	finish func()
}

func newDrainer() *drainer {
	return &drainer{tracked: make(map[*tracked]struct{}), drainCh: make(chan struct{}), changed: make(chan struct{}, 1), stopped: make(chan struct{})}
}

func (d *drainer) poke() {
	select {
	case d.changed <- struct{}{}:
	default:
	}
}

func (d *drainer) draining() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.drainCh
}

// addHTTP hooks srv's ConnState and BaseContext. Hijacked connections stay
// counted until Track's release or the drain deadline, because after a
// hijack net/http no longer reports when they close.
func (d *drainer) addHTTP(srv *http.Server) {
	h := &httpServer{srv: srv, conns: make(map[net.Conn]connState)}
	prevState := srv.ConnState
	srv.ConnState = func(c net.Conn, st http.ConnState) {
		d.mu.Lock()
		switch st {
		case http.StateClosed:
			delete(h.conns, c)
		default:
			h.conns[c] = connState{st, time.Now()}
		}
		d.mu.Unlock()
		if st == http.StateClosed || st == http.StateIdle {
			d.poke()
		}
		if prevState != nil {
			prevState(c, st)
		}
	}
	prevBase := srv.BaseContext
	srv.BaseContext = func(ln net.Listener) context.Context {
		ctx := context.Background()
		if prevBase != nil {
			ctx = prevBase(ln)
		}
		return context.WithValue(ctx, drainKey{}, d)
	}
	d.mu.Lock()
	d.servers = append(d.servers, h)
	d.mu.Unlock()
}

func (d *drainer) addGRPC(s GRPCServer) {
	d.mu.Lock()
	d.grpc = append(d.grpc, s)
	d.mu.Unlock()
}

// track registers c; finish is called when a drain starts (at once if one
// is under way). release must be called when c is done.
func (d *drainer) track(c io.Closer, finish func()) (release func()) {
	t := &tracked{c: c, finish: finish}
	d.mu.Lock()
	d.tracked[t] = struct{}{}
	active := d.active
	// A hijacked conn that is tracked is waited for through release only.
	for _, h := range d.servers {
		if nc, ok := c.(net.Conn); ok {
			delete(h.conns, nc)
		}
	}
	d.mu.Unlock()
	if active && finish != nil {
		finish()
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			delete(d.tracked, t)
			d.mu.Unlock()
			d.poke()
		})
	}
}

// pending counts what a drain still waits for; h2 connections are left to
// http.Server.Shutdown, which sends them GOAWAY.
func (d *drainer) pendingLocked() int {
	n := len(d.tracked)
	for _, h := range d.servers {
		for c := range h.conns {
			if isH2(c) {
				continue
			}
			n++
		}
	}
	return n
}

func isH2(c net.Conn) bool {
	tc, ok := c.(*tls.Conn)
	return ok && tc.ConnectionState().NegotiatedProtocol == "h2"
}

// drainResult reports what a drain did.
type drainResult struct {
	drained, forced int
	took            time.Duration
}

// soft starts a drain that resume can undo: handlers are told, idle
// keep-alive connections close, busy ones answer with Connection: close;
// then it waits for the connections to go until deadline, when it closes
// what is left. It never calls http.Server.Shutdown: Shutdown drops a
// request whose connection was accepted but not yet read (net/http returns
// from conn.serve when it sees the shutdown flag after reading the request),
// which is the lost-request bug of the plain tableflip pattern.
func (d *drainer) soft(deadline time.Time, cancel <-chan struct{}) drainResult {
	start := time.Now()
	d.mu.Lock()
	if !d.active {
		d.active = true
		close(d.drainCh)
	}
	var finishers []func()
	for t := range d.tracked {
		if t.finish != nil {
			finishers = append(finishers, t.finish)
		}
	}
	servers := append([]*httpServer(nil), d.servers...)
	initial := d.pendingLocked()
	d.mu.Unlock()
	for _, f := range finishers {
		f()
	}
	for _, h := range servers {
		h.srv.SetKeepAlivesEnabled(false)
	}
	forced := d.wait(deadline, cancel)
	return drainResult{drained: max(initial-forced, 0), forced: forced, took: time.Since(start)}
}

// wait returns when nothing is pending, or when cancel closes (a rollback),
// or closes what is left at deadline and returns how many it closed.
func (d *drainer) wait(deadline time.Time, cancel <-chan struct{}) int {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	// Idle connections that were mid-request when keep-alives went off
	// become idle later; close those as they appear.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		d.mu.Lock()
		var idle []net.Conn
		for _, h := range d.servers {
			for c, cs := range h.conns {
				if cs.st == http.StateIdle || cs.st == http.StateNew && time.Since(cs.since) > newConnIdleAfter {
					idle = append(idle, c)
				}
			}
		}
		n := d.pendingLocked()
		d.mu.Unlock()
		for _, c := range idle {
			_ = c.Close()
		}
		if n == 0 {
			return 0
		}
		select {
		case <-d.changed:
		case <-tick.C:
		case <-cancel:
			return 0
		case <-d.stopped:
			return d.forceClose()
		case <-timer.C:
			return d.forceClose()
		}
	}
}

func (d *drainer) forceClose() int {
	d.mu.Lock()
	var cs []io.Closer
	for t := range d.tracked {
		cs = append(cs, t.c)
	}
	for _, h := range d.servers {
		for c := range h.conns {
			cs = append(cs, c)
		}
	}
	d.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
	return len(cs)
}

// resume undoes soft: keep-alives on, a fresh drain channel.
func (d *drainer) resume() {
	d.mu.Lock()
	if d.active {
		d.active = false
		d.drainCh = make(chan struct{})
	}
	servers := append([]*httpServer(nil), d.servers...)
	d.mu.Unlock()
	for _, h := range servers {
		h.srv.SetKeepAlivesEnabled(true)
	}
}

// final ends serving for good: gRPC servers stop gracefully, HTTP servers
// shut down (only h2 connections can remain at this point), and at the
// deadline everything is closed.
func (d *drainer) final(deadline time.Time) int {
	d.mu.Lock()
	servers := append([]*httpServer(nil), d.servers...)
	grpcs := append([]GRPCServer(nil), d.grpc...)
	d.mu.Unlock()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var wg sync.WaitGroup
	forced := 0
	var fmu sync.Mutex
	for _, g := range grpcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			done := make(chan struct{})
			go func() { g.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				g.Stop()
				<-done
				fmu.Lock()
				forced++
				fmu.Unlock()
			}
		}()
	}
	for _, h := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.srv.Shutdown(ctx); err != nil {
				_ = h.srv.Close()
			}
		}()
	}
	wg.Wait()
	return forced
}

// stopNow closes every server at once.
func (d *drainer) stopNow() {
	d.stopOnce.Do(func() { close(d.stopped) })
	d.mu.Lock()
	servers := append([]*httpServer(nil), d.servers...)
	grpcs := append([]GRPCServer(nil), d.grpc...)
	d.mu.Unlock()
	for _, g := range grpcs {
		g.Stop()
	}
	for _, h := range servers {
		_ = h.srv.Close()
	}
}
