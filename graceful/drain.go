package graceful

import (
	"context"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// This file is the drainer: what a drain waits for (HTTP connections,
// hijacked and tracked ones, gRPC servers), how it tells them to finish,
// and what it closes at the deadline. http.go hooks net/http servers into
// it; grpc.go holds the gRPC side.

type drainKey struct{}

// Draining returns a channel that is closed when the process serving the
// request behind ctx starts draining; handlers of long or hijacked
// connections (WebSockets, streams) select on it to finish in time. It
// returns nil (never ready) for a context that does not come from a server
// registered with [Upgrader.HTTP] or from [Upgrader.DrainContext].
func Draining(ctx context.Context) <-chan struct{} {
	d, ok := ctx.Value(drainKey{}).(*drainer)
	if !ok {
		return nil
	}
	return d.draining()
}

// DrainContext returns a copy of ctx for which [Draining] reports this
// process's drains, for servers graceful does not hook itself: a gRPC
// server's interceptors (graceful/grpcdrain has them), a raw protocol's
// handlers. HTTP does it for the request contexts of its servers.
func (u *Upgrader) DrainContext(ctx context.Context) context.Context {
	return context.WithValue(ctx, drainKey{}, u.drain)
}

// Track registers a connection that net/http does not report on: a raw
// protocol's, or a hijacked one that did not come from a graceful
// listener. (Connections from Listen that an HTTP handler hijacks, a
// WebSocket's, are waited for until they close without Track.) c is what
// the drain closes if it is still tracked at the deadline: the connection
// itself, a WebSocket library's connection (gorilla/websocket's *Conn),
// [CloseFunc] around a close function (coder/websocket's Conn.CloseNow) or
// [CancelFunc] around the cancel of the context the handler runs under.
// finish, if not nil, is called when a drain starts (at once if one is
// under way) to ask the owner to wrap up; it runs in the drain's goroutine
// and must not block. Call the returned release when the connection is
// done; it is idempotent. A tracked connection from a graceful listener is
// also done when it closes.
func (u *Upgrader) Track(c io.Closer, finish func()) (release func()) {
	return u.drain.track(c, finish)
}

// CloseFunc adapts a close function to the io.Closer Track takes, such as
// coder/websocket's Conn.CloseNow.
type CloseFunc func() error

// Close calls f.
func (f CloseFunc) Close() error { return f() }

// CancelFunc adapts the cancel function of a context to the io.Closer
// Track takes: the drain deadline cancels the context a handler's loop
// runs under.
type CancelFunc context.CancelFunc

// Close calls f.
func (f CancelFunc) Close() error { f(); return nil }

// drainer tracks every connection a drain must wait for. It is reusable: a
// soft drain (at handoff) can be undone by resume when the successor fails
// inside the bake window.
type drainer struct {
	mu      sync.Mutex
	servers []*http.Server
	grpcs   []*grpcServer
	conns   map[net.Conn]*connEntry // HTTP connections, by canonical connection
	byAddr  map[string]*connEntry   // hijacked connections of ours, by address pair
	tracked map[*tracked]struct{}
	drainCh chan struct{} // closed while a drain is under way
	active  bool          // a drain is under way

	closing  atomic.Bool   // answers carry Connection: close
	changed  chan struct{} // poked (non-blocking) when something a drain waits for goes away
	stopped  chan struct{} // closed by stopNow
	stopOnce sync.Once
	stops    sync.WaitGroup // GracefulStop goroutines (grpc.go)
}

// connEntry is one HTTP connection: its last state as net/http reported
// it, or hijacked once net/http let go of it.
type connEntry struct {
	key      net.Conn // canonical (canon): what a drain closes
	own      *conn    // key, when it came from a graceful listener
	addr     string   // its address pair, once hijacked (byAddr)
	st       http.ConnState
	since    time.Time
	hijacked bool
}

// tracked is a connection registered with Track.
type tracked struct {
	c      io.Closer
	own    *conn // the graceful connection under c, if any: its close releases t
	finish func()
}

// newConnIdleAfter: a connection that sent nothing for this long since it
// was accepted (a browser's preconnect) counts as idle and is closed by a
// drain, as http.Server.Shutdown does.
const newConnIdleAfter = 5 * time.Second

// idleGrace is how long a keep-alive connection (HTTP/1 or HTTP/2) must
// have been idle before a drain closes it (at most half the drain's time).
// Closing a connection that is idle at this instant races with a client
// that is reusing it at this instant: its request meets a closed
// connection (Go's transport then resends it by itself, other clients may
// report an error). A client that is busy reuses its connection within
// microseconds; one idle for this long is one the client is not using, so
// the race all but disappears. Busy connections do not wait for it: their
// next answer carries Connection: close, after which net/http closes an
// HTTP/1 connection, and an HTTP/2 server sends GOAWAY and closes once the
// client's streams are done.
const idleGrace = time.Second

// drainTick paces the re-examination of idle connections during a drain.
const drainTick = 50 * time.Millisecond

func newDrainer() *drainer {
	return &drainer{
		conns:   make(map[net.Conn]*connEntry),
		byAddr:  make(map[string]*connEntry),
		tracked: make(map[*tracked]struct{}),
		drainCh: make(chan struct{}),
		changed: make(chan struct{}, 1),
		stopped: make(chan struct{}),
	}
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

// canon returns the connection a net/http report is about, under the
// wrappers that carry it: a *tls.Conn, net/http's stand-in for an
// unencrypted HTTP/2 connection, anything else that offers NetConn. A
// graceful conn is where it stops.
func canon(c net.Conn) net.Conn {
	for range 8 {
		switch x := c.(type) {
		case *conn:
			return x
		case interface{ UnencryptedNetConn() net.Conn }:
			c = x.UnencryptedNetConn()
		case interface{ NetConn() net.Conn }:
			c = x.NetConn()
		default:
			return c
		}
	}
	return c
}

// addrPair identifies a TCP connection by its two addresses; a connection
// whose peer has no address (a Unix socket's) has none.
func addrPair(c net.Conn) string {
	la, ra := c.LocalAddr(), c.RemoteAddr()
	if la == nil || ra == nil || ra.String() == "" || ra.String() == "@" {
		return ""
	}
	return la.Network() + " " + la.String() + " " + ra.String()
}

func (d *drainer) removeLocked(e *connEntry) {
	delete(d.conns, e.key)
	if e.addr != "" && d.byAddr[e.addr] == e {
		delete(d.byAddr, e.addr)
	}
}

// connClosed is called once by a graceful conn's Close.
func (d *drainer) connClosed(c *conn) {
	d.mu.Lock()
	if e := d.conns[c]; e != nil {
		d.removeLocked(e)
	}
	for t := range d.tracked {
		if t.own == c {
			delete(d.tracked, t)
		}
	}
	d.mu.Unlock()
	d.poke()
}

// track registers c; finish is called when a drain starts (at once if one
// is under way). release must be called when c is done.
func (d *drainer) track(c io.Closer, finish func()) (release func()) {
	t := &tracked{c: c, finish: finish}
	d.mu.Lock()
	nc, ok := c.(net.Conn)
	if x, isWS := c.(interface{ NetConn() net.Conn }); !ok && isWS {
		nc, ok = x.NetConn(), true // a WebSocket library's connection (gorilla)
	}
	if ok {
		// A hijacked connection net/http reported is waited for through
		// the tracking from now on, not twice.
		key := canon(nc)
		if e := d.conns[key]; e != nil {
			d.removeLocked(e)
		}
		t.own, _ = key.(*conn)
	}
	if t.own == nil || !t.own.closed.Load() {
		d.tracked[t] = struct{}{}
	}
	active := d.active
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

// pendingLocked counts what a drain still waits for.
func (d *drainer) pendingLocked() int {
	return len(d.conns) + len(d.tracked) + d.grpcStoppingLocked()
}

// drainResult reports what a drain did.
type drainResult struct {
	drained, forced int
	took            time.Duration
}

// soft starts a drain that resume can undo: gRPC servers that can serve
// again stop gracefully (their clients get GOAWAY and move before their
// streams are told to finish), handlers are told, answers carry
// Connection: close (an HTTP/1 connection closes after its next answer, an
// HTTP/2 server sends GOAWAY), keep-alive connections idle for idleGrace
// close; then it waits for the connections to go until deadline, when it
// closes what is left. It never calls http.Server.Shutdown: Shutdown drops
// a request whose connection was accepted but not yet read (net/http
// returns from conn.serve when it sees the shutdown flag after reading the
// request), which is the lost-request bug of the plain tableflip pattern.
func (d *drainer) soft(deadline time.Time, cancel <-chan struct{}) drainResult {
	start := time.Now()
	// Answers carry Connection: close before anyone is told of the drain:
	// a handler that sees Draining and answers at once closes its
	// connection (HTTP/2: sends GOAWAY) like every later answer.
	d.closing.Store(true)
	d.mu.Lock()
	d.stopResumablesLocked()
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
	initial := d.pendingLocked()
	d.mu.Unlock()
	for _, f := range finishers {
		f()
	}
	forced := d.wait(deadline, cancel)
	return drainResult{drained: max(initial-forced, 0), forced: forced, took: time.Since(start)}
}

// wait returns when nothing is pending, or when cancel closes (a rollback),
// or closes what is left at deadline and returns how many it closed.
func (d *drainer) wait(deadline time.Time, cancel <-chan struct{}) int {
	grace := min(idleGrace, time.Until(deadline)/2)
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	// Connections that were mid-request when the drain started, or that
	// have not been idle long enough yet, are closed as they qualify.
	tick := time.NewTicker(drainTick)
	defer tick.Stop()
	for {
		d.mu.Lock()
		var idle []net.Conn
		for _, e := range d.conns {
			if e.st == http.StateIdle && time.Since(e.since) >= grace || e.st == http.StateNew && time.Since(e.since) > newConnIdleAfter {
				idle = append(idle, e.key)
			}
		}
		n := d.pendingLocked()
		d.mu.Unlock()
		for _, c := range idle {
			// Closing a graceful conn removes its entry; a foreign one
			// goes when net/http reports it closed.
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

// forceClose closes everything still waited for and stops gRPC servers
// still stopping; it returns how many it had to close, which is what the
// drain reports as forced. Tracked closers go first: closing a WebSocket
// library's connection closes the connection under it, which then is not
// closed, nor counted, a second time.
func (d *drainer) forceClose() int {
	d.mu.Lock()
	var ts []io.Closer
	for t := range d.tracked {
		ts = append(ts, t.c)
		delete(d.tracked, t)
	}
	d.mu.Unlock()
	for _, c := range ts {
		_ = c.Close()
	}
	d.mu.Lock()
	var cs []io.Closer
	for _, e := range d.conns {
		cs = append(cs, e.key)
		// Closed by us now: nothing to wait for any more, whether or not
		// net/http (which has let go of a hijacked one) reports it.
		d.removeLocked(e)
	}
	d.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
	return len(ts) + len(cs) + d.stopStopping()
}

// resume undoes soft: answers keep connections open again, a fresh drain
// channel, and gRPC servers that stopped serve again.
func (d *drainer) resume() {
	d.mu.Lock()
	if d.active {
		d.active = false
		d.drainCh = make(chan struct{})
	}
	rs := d.resumeGRPCLocked()
	d.mu.Unlock()
	d.closing.Store(false)
	for _, r := range rs {
		r.Resume()
	}
}

// final ends serving for good: gRPC servers stop gracefully, HTTP servers
// shut down (no connection is left by now but those that arrived late),
// and at the deadline everything is closed. It returns how many gRPC
// servers had to be stopped at the deadline.
func (d *drainer) final(deadline time.Time) int {
	d.mu.Lock()
	servers := append([]*http.Server(nil), d.servers...)
	d.stopAllGRPCLocked()
	d.mu.Unlock()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	var wg sync.WaitGroup
	for _, srv := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
		}()
	}
	forced := d.awaitGRPC(ctx)
	wg.Wait()
	return forced
}

// stopNow closes every server at once.
func (d *drainer) stopNow() {
	d.stopOnce.Do(func() { close(d.stopped) })
	d.mu.Lock()
	servers := append([]*http.Server(nil), d.servers...)
	grpcs := append([]*grpcServer(nil), d.grpcs...)
	d.mu.Unlock()
	for _, g := range grpcs {
		g.s.Stop()
	}
	for _, srv := range servers {
		_ = srv.Close()
	}
	d.stops.Wait()
}
