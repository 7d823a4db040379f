package graceful

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
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
	closing  atomic.Bool   // HTTP/1 answers carry Connection: close
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

// idleGrace is how long a keep-alive connection must have been idle before
// a drain closes it (at most half the drain's time). Closing a connection
// that is idle at this instant races with a client that is reusing it at
// this instant: its request meets a closed connection (Go's transport then
// resends it by itself, other clients may report an error). A client that
// is busy reuses its connection within microseconds; one idle for this long
// is one the client is not using, so the race all but disappears. Busy
// connections do not wait for it: their next answer carries Connection:
// close and net/http closes them after it.
const idleGrace = time.Second

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
	srv.Handler = d.closeWhenDraining(srv.Handler)
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

// closeWhenDraining makes HTTP/1 answers written during a drain carry
// Connection: close, so that the client does not reuse the connection and
// net/http closes it right after the answer. This replaces
// http.Server.SetKeepAlivesEnabled(false), which also closes every idle
// connection at that instant (the race idleGrace avoids) and closes
// connections after answers written just before it without telling the
// client.
func (d *drainer) closeWhenDraining(next http.Handler) http.Handler {
	if next == nil {
		next = http.DefaultServeMux
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 1 {
			// HTTP/2 has no Connection header; Shutdown sends GOAWAY.
			next.ServeHTTP(w, r)
			return
		}
		cw := &closeWriter{ResponseWriter: w, d: d}
		next.ServeHTTP(cw, r)
		// A handler that wrote nothing: net/http writes the header
		// from this map after we return.
		cw.header()
	})
}

// closeWriter adds Connection: close to an HTTP/1 answer if a drain has
// started by the time its header is written. It offers what net/http's
// HTTP/1 ResponseWriter offers (Flusher, Hijacker, ReaderFrom) and Unwrap
// for http.ResponseController.
type closeWriter struct {
	http.ResponseWriter
	d     *drainer
	wrote bool
}

func (w *closeWriter) header() {
	if w.wrote {
		return
	}
	w.wrote = true
	if w.d.closing.Load() {
		w.ResponseWriter.Header().Set("Connection", "close")
	}
}

func (w *closeWriter) WriteHeader(code int) {
	if code >= 200 {
		w.header()
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *closeWriter) Write(b []byte) (int, error) {
	w.header()
	return w.ResponseWriter.Write(b)
}

func (w *closeWriter) ReadFrom(r io.Reader) (int64, error) {
	w.header()
	return io.Copy(w.ResponseWriter, r)
}

func (w *closeWriter) Flush() {
	w.header()
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *closeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.wrote = true // the connection is the handler's now
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

func (w *closeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

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

// soft starts a drain that resume can undo: handlers are told, answers
// carry Connection: close (so busy keep-alive connections close after
// their next answer), keep-alive connections idle for idleGrace close;
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
	initial := d.pendingLocked()
	d.mu.Unlock()
	d.closing.Store(true)
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
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		d.mu.Lock()
		var idle []net.Conn
		for _, h := range d.servers {
			for c, cs := range h.conns {
				if cs.st == http.StateIdle && time.Since(cs.since) >= grace || cs.st == http.StateNew && time.Since(cs.since) > newConnIdleAfter {
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

// resume undoes soft: keep-alive answers again, a fresh drain channel.
func (d *drainer) resume() {
	d.mu.Lock()
	if d.active {
		d.active = false
		d.drainCh = make(chan struct{})
	}
	d.mu.Unlock()
	d.closing.Store(false)
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
