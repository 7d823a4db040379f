// Package grpcdrain serves grpc-go on a graceful.Upgrader so that upgrades
// and shutdowns lose no RPC and clients move to the new process at once,
// inside a bake window too. It is the only part of baton that imports
// grpc-go.
//
//	u, _ := graceful.New(graceful.Options{BakeWindow: 30 * time.Second})
//	ln, _ := u.Listen(ctx, "tcp", ":9090")
//	gs, _ := grpcdrain.New(u, grpcdrain.Options{Register: func(s *grpc.Server) {
//		pb.RegisterGreeterServer(s, greeter{})
//	}})
//	go gs.Serve(ln)
//	if err := u.Ready(ctx); err != nil { os.Exit(1) }
//	u.Run(ctx)
//
// # What it does
//
// A *grpc.Server registered with graceful.Upgrader.GRPC is stopped only
// when serving ends for good, because its GracefulStop cannot be undone:
// with a bake window its clients stay on the old process until the window
// ends. A Server from this package is a graceful.Resumable instead. As
// soon as a drain starts (the handoff, baking or not, or Shutdown once
// DrainDelay has passed) it stops its grpc.Server gracefully: GOAWAY goes
// to every client, which opens its next streams on a new connection, and
// the listener, paused by graceful, leaves that connection to the new
// process. RPCs in flight finish where they are. If the process takes
// serving back inside the bake window, the Server makes a new grpc.Server
// (Options.Register registers the services on each) and serves again.
//
// Its interceptors (UnaryServerInterceptor, StreamServerInterceptor, also
// usable on a grpc.Server of your own) make graceful.Draining work in
// handlers: a stream handler selects on Draining(stream.Context()) and
// returns, and the client reopens the stream, on the new process since its
// old connection has had GOAWAY. That is why there is no reconnect storm in
// a bake window: a stream is told to finish only once the server it runs on
// has stopped accepting streams. The drain waits for GracefulStop, and the
// drain figures (the drained log event, baton.graceful.drain.duration)
// include that wait.
//
// The grpc.health.v1 service (Health) reports SERVING while the Server
// serves and NOT_SERVING from the start of a drain, SERVING again after a
// resume; a Watch stream that has told its client NOT_SERVING in a drain
// ends, so that watchers do not hold GracefulStop.
//
// # Limits
//
// A stream handler that ignores Draining holds GracefulStop until the drain
// deadline, when graceful calls Stop and the stream fails with Unavailable.
// Health turns NOT_SERVING when gRPC's own drain starts, after Shutdown's
// DrainDelay; the HTTP probe of graceful.Upgrader.Health turns not-ready at
// once. A client with client-side health checking may see NOT_SERVING from
// the old process a moment before its GOAWAY, and fail fast until it
// reconnects; use WaitForReady for such clients. Connections are handed to
// each grpc.Server through the Server's own accept loop, so Serve must be
// given the listener from graceful's Listen, not one wrapped by
// credentials (use grpc.Creds in ServerOptions for TLS).
package grpcdrain
