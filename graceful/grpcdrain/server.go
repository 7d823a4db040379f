package grpcdrain

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/batonhq/baton/graceful"
)

// DefaultClaimWait bounds how long GracefulStop waits for the connections
// just handed to a grpc.Server to reach it (see Server.GracefulStop).
const DefaultClaimWait = time.Second

// Options configure a Server. Register is required; the other zero fields
// mean documented defaults.
type Options struct {
	// Register registers the application's services on a new
	// grpc.Server; the Server calls it for every grpc.Server it makes.
	// Required.
	Register func(*grpc.Server)
	// ServerOptions are passed to every grpc.NewServer, after the
	// interceptors that make graceful.Draining work (so a
	// grpc.UnaryInterceptor or grpc.StreamInterceptor given here runs
	// outside them; chained ones run inside). Nil means none.
	ServerOptions []grpc.ServerOption
	// HealthServices are service names the grpc.health.v1 service reports
	// besides "" (the whole server). Nil means "" only.
	HealthServices []string
	// ClaimWait bounds GracefulStop's wait for connections just handed to
	// a grpc.Server. Zero means DefaultClaimWait.
	ClaimWait time.Duration
}

// Server serves gRPC on graceful listeners across upgrades. It is a
// [graceful.Resumable]: New registers it with the Upgrader, which stops it
// gracefully as soon as a drain starts and resumes it if the process takes
// serving back. Because a grpc.Server cannot serve again after
// GracefulStop, the Server makes a new one (Options.Register) each time it
// resumes; its own accept loop (Serve) hands each connection to the
// grpc.Server of the moment. The zero value is not usable; call New.
//
// Goroutines: Serve runs in the caller's goroutine until its listener
// closes; each grpc.Server's Serve goroutines end with it; GracefulStop and
// Stop wait for them.
type Server struct {
	u      *graceful.Upgrader
	opts   Options
	health *health.Server

	mu    sync.Mutex
	cur   *generation   // serving; nil between GracefulStop and Resume
	old   []*generation // stopping
	feeds []*feed       // one per Serve call
}

// New makes a Server serving on u's listeners and registers it with
// u.GRPC. Options.Register is required.
func New(u *graceful.Upgrader, opts Options) (*Server, error) {
	if opts.Register == nil {
		return nil, errors.New("grpcdrain: Options.Register is nil; it must register the services on each grpc.Server")
	}
	if opts.ClaimWait < 0 {
		return nil, fmt.Errorf("grpcdrain: Options.ClaimWait is negative (%s); use zero for the default", opts.ClaimWait)
	}
	if opts.ClaimWait == 0 {
		opts.ClaimWait = DefaultClaimWait
	}
	s := &Server{u: u, opts: opts, health: health.NewServer()}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, name := range opts.HealthServices {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.cur = s.newGeneration()
	u.GRPC(s)
	return s, nil
}

// Health returns the grpc.health.v1 service every grpc.Server of s
// registers. It reports SERVING while s serves and NOT_SERVING from the
// start of a drain (after the GOAWAY is on its way, so that clients move
// rather than give up), SERVING again when the process resumes. Its
// SetServingStatus may mark a service down meanwhile; the next drain or
// resume sets every service again.
func (s *Server) Health() *health.Server { return s.health }

// Serve accepts on ln (from graceful's Listen) and hands each connection to
// the grpc.Server of the moment. It returns nil once ln is closed, which
// graceful does when this process has finished serving, or the accept
// error.
func (s *Server) Serve(ln net.Listener) error {
	f := &feed{addr: ln.Addr()}
	s.mu.Lock()
	s.feeds = append(s.feeds, f)
	if s.cur != nil {
		s.cur.attach(f)
	}
	s.mu.Unlock()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		s.mu.Lock()
		g := s.cur
		s.mu.Unlock()
		if g == nil || !g.deliver(f, c) {
			// Accepted as a drain began: graceful pauses the listener
			// before it stops a generation and waits until this loop
			// is back in Accept, so this is a connection the grpc.Server
			// refused as it stopped.
			_ = c.Close()
		}
	}
}

// GracefulStop stops the grpc.Server of the moment: it stops accepting,
// sends GOAWAY (clients open their next streams on a new connection, which
// the listener, paused by graceful, leaves to the new process), lets
// pending RPCs finish, and sets the health service NOT_SERVING. It returns
// when every grpc.Server s made, earlier ones still stopping included, has
// stopped. It first waits (at most ClaimWait) for connections just handed
// over to reach the grpc.Server: one that GracefulStop overtook would be
// closed unanswered.
func (s *Server) GracefulStop() {
	s.mu.Lock()
	g := s.cur
	s.cur = nil
	if g != nil {
		s.old = append(s.old, g)
	}
	var gens []*generation // earlier ones, still stopping
	for _, o := range s.old {
		if o != g {
			gens = append(gens, o)
		}
	}
	s.mu.Unlock()
	if g != nil {
		g.awaitClaims(s.opts.ClaimWait)
		stopped := make(chan struct{})
		go func() { g.srv.GracefulStop(); close(stopped) }()
		// GracefulStop closes the listeners before it sends GOAWAY;
		// health goes NOT_SERVING once it has got that far.
		g.awaitListenersClosed(stopped)
		s.health.Shutdown()
		<-stopped
		g.wg.Wait()
	}
	for _, o := range gens {
		o.srv.GracefulStop()
		o.wg.Wait()
	}
	if g != nil {
		gens = append(gens, g)
	}
	s.forget(gens)
}

// Stop stops every grpc.Server s made at once.
func (s *Server) Stop() {
	s.mu.Lock()
	gens := append([]*generation(nil), s.old...)
	if s.cur != nil {
		gens = append(gens, s.cur)
		s.cur = nil
	}
	s.mu.Unlock()
	s.health.Shutdown()
	for _, g := range gens {
		g.srv.Stop()
		g.wg.Wait()
	}
	s.forget(gens)
}

// Resume serves again with a new grpc.Server after GracefulStop, when the
// process takes serving back inside a bake window.
func (s *Server) Resume() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != nil {
		return
	}
	s.cur = s.newGeneration()
	for _, f := range s.feeds {
		s.cur.attach(f)
	}
	s.health.Resume()
}

func (s *Server) forget(gens []*generation) {
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.old[:0]
	for _, o := range s.old {
		gone := false
		for _, g := range gens {
			gone = gone || g == o
		}
		if !gone {
			kept = append(kept, o)
		}
	}
	s.old = kept
}

func (s *Server) newGeneration() *generation {
	opts := append([]grpc.ServerOption{
		grpc.ChainUnaryInterceptor(UnaryServerInterceptor(s.u)),
		grpc.ChainStreamInterceptor(StreamServerInterceptor(s.u)),
	}, s.opts.ServerOptions...)
	srv := grpc.NewServer(opts...)
	healthpb.RegisterHealthServer(srv, s.health)
	s.opts.Register(srv)
	return &generation{srv: srv, lns: map[*feed]*chanListener{}}
}

// feed is one listener Serve accepts on.
type feed struct{ addr net.Addr }

// generation is one grpc.Server and the listeners it serves from.
type generation struct {
	srv *grpc.Server
	wg  sync.WaitGroup // its Serve goroutines
	// claims counts connections handed over that have not reached the
	// grpc.Server yet (claimConn).
	claims sync.WaitGroup

	mu  sync.Mutex
	lns map[*feed]*chanListener
}

// attach starts serving f's connections. s.mu is held.
func (g *generation) attach(f *feed) {
	cl := &chanListener{addr: f.addr, conns: make(chan net.Conn), done: make(chan struct{})}
	g.mu.Lock()
	g.lns[f] = cl
	g.mu.Unlock()
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		_ = g.srv.Serve(cl)
	}()
}

// deliver hands c to the grpc.Server; it reports false if the grpc.Server
// stopped listening first.
func (g *generation) deliver(f *feed, c net.Conn) bool {
	g.mu.Lock()
	cl := g.lns[f]
	g.mu.Unlock()
	if cl == nil {
		return false
	}
	g.claims.Add(1)
	cc := &claimConn{Conn: c, g: g}
	select {
	case cl.conns <- cc:
		return true
	case <-cl.done:
		cc.claim()
		return false
	}
}

// awaitClaims waits until every connection handed over has reached the
// grpc.Server, or for at most d.
func (g *generation) awaitClaims(d time.Duration) {
	done := make(chan struct{})
	go func() { g.claims.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
	}
}

// awaitListenersClosed returns once the grpc.Server has closed every
// listener it serves from, or stopped.
func (g *generation) awaitListenersClosed(stopped <-chan struct{}) {
	g.mu.Lock()
	var cls []*chanListener
	for _, cl := range g.lns {
		cls = append(cls, cl)
	}
	g.mu.Unlock()
	for _, cl := range cls {
		select {
		case <-cl.done:
		case <-stopped:
			return
		}
	}
}

// chanListener is a net.Listener fed by Serve's accept loop; closing it
// (as GracefulStop does) leaves graceful's listener open.
type chanListener struct {
	addr  net.Addr
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// claimConn marks the first use of a connection by the grpc.Server: its
// goroutine for a new connection sets a deadline (or reads, or writes)
// first thing after checking that the server is not stopping, so once that
// happened GracefulStop can no longer close the connection unanswered.
type claimConn struct {
	net.Conn
	g    *generation
	once sync.Once
}

func (c *claimConn) claim() { c.once.Do(c.g.claims.Done) }

func (c *claimConn) SetDeadline(t time.Time) error {
	c.claim()
	return c.Conn.SetDeadline(t)
}

func (c *claimConn) Read(b []byte) (int, error) {
	c.claim()
	return c.Conn.Read(b)
}

func (c *claimConn) Write(b []byte) (int, error) {
	c.claim()
	return c.Conn.Write(b)
}

func (c *claimConn) Close() error {
	c.claim()
	return c.Conn.Close()
}

// NetConn returns the connection from graceful's listener.
func (c *claimConn) NetConn() net.Conn { return c.Conn }
