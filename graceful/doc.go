// Package graceful keeps a Go service answering every request across binary
// upgrades and shutdowns: socket handoff to a new process, a blue-green bake
// window with automatic rollback, connection draining, health probes and
// systemd integration. Measured figures are in the graceful section of
// BENCHMARKS.md at the root of the module.
//
// # Lifecycle
//
//	u, _ := graceful.New(graceful.Options{BakeWindow: 30 * time.Second, Check: pingDB})
//	ln, _ := u.Listen(ctx, "tcp", ":8080")   // inherited, socket-activated or new
//	srv := &http.Server{Handler: h}
//	u.HTTP(srv)                              // tracked for draining
//	go srv.Serve(ln)                         // Accept blocks until Ready
//	if err := u.Ready(ctx); err != nil { os.Exit(1) } // runs Check, then announces
//	err := u.Run(ctx)                        // SIGHUP upgrades, SIGTERM drains
//
// A process is starting, ready, upgrading (still accepting), baking, draining
// and finally stopped ([Upgrader.State], and the [Upgrader.Health]
// handler's readiness probe). [Upgrader.Upgrade] (or SIGHUP, or systemd's
// ExecReload) starts whatever binary now stands at the path the process was
// started from, with the same arguments, and passes it duplicates of every
// listener; [Upgrader.UpgradeWith] names the binary, arguments and bake
// window of one upgrade instead. The new process accepts only after its
// [Upgrader.Ready], that is after the application's Check passed; the old
// one stops accepting only after it receives that notice, so for a moment
// both accept and there is no gap. Both hold the same socket (not
// SO_REUSEPORT), so the kernel's accept queue is never lost: a connection is
// accepted by one process or the other, never refused or reset by the
// handoff.
//
// Upgrade returns nil once the new process is the acceptor. If the new
// process cannot be started, exits, or is not ready within UpgradeTimeout,
// it is killed, the old process keeps serving, and Upgrade returns an
// [*UpgradeError] naming the binary, PID, exit status, cause ([ErrStart],
// [ErrChildExited], [ErrChildTimeout]) and the last lines it wrote to
// standard error (captured in an unlinked temporary file until its Ready,
// then copied to the real standard error, which the new process takes
// over). A trigger while an upgrade runs fails at once with
// [ErrUpgradeInProgress].
//
// # Why the plain pattern loses requests, and what graceful does instead
//
// tableflip's documented pattern calls http.Server.Shutdown after the
// handoff. net/http reads the request of a connection it accepted just
// before Shutdown, then sees the shutdown flag and closes the connection
// without an answer: the client gets EOF (TestServerShutdownDropsAcceptedRequest
// shows it). Without keep-alive every request is such a connection, hence
// the EOFs. graceful never calls Shutdown while a request can be pending:
// accepting is paused (a deadline interrupts Accept; the socket stays
// open), pause returns only once a connection the kernel handed over at
// that instant has reached its server, answers carry Connection: close
// from then on (keep-alive connections end after their next answer, HTTP/2
// ones get GOAWAY), and only when every connection is gone does Shutdown
// run.
//
// # Bake window (blue-green in one process tree)
//
// With a bake window (Options.BakeWindow, or UpgradeOptions.BakeWindow for
// one upgrade), the old process stays warm after the handoff: its listeners
// stay open but paused, its own connections drain. If, inside the window,
// the new process leaves for any reason (it exits with any status or
// signal, returns from main through a deferred Close, is shut down) or
// fails its Check (re-run every CheckInterval), the old process resumes
// accepting, rewrites the PID file, tells systemd it is MAINPID again, and
// can upgrade again later. A new process that leaves on purpose (Close,
// Shutdown, a failed Check, Rollback) gives serving back first and then
// drains, so no request is lost; only one that dies abruptly loses what it
// had in flight. The resumed process keeps its own Options: its next
// Upgrade starts Options.Executable, not the binary that failed, so install
// each release at a path of its own and name it in UpgradeOptions.Binary.
// Watching uses the child's exit status (the old process is its parent) and
// a socketpair passed with the listeners. When the window ends, the old
// process drains for good and exits. While the old process bakes, the new
// one refuses to upgrade ([ErrParentBaking]): otherwise a rollback could
// resurrect a generation older than the one being replaced.
//
// An orchestrator (package rollout) ends the window itself from the new
// process: [Upgrader.Promote] ends it (the old process stops being a
// fallback, drains and exits now), [Upgrader.Rollback] gives serving back
// by the same path as a failed Check (the old process resumes, the new one
// drains and finishes). In the old process, [Upgrader.Resumed] returns a
// channel closed when it takes serving back, which is how it learns that it
// has to carry on. Promote without a baking predecessor does nothing;
// Rollback fails with [ErrNoFallback]. To stop the whole service inside a
// window, stop both processes (systemd's default KillMode=control-group
// signals every process of the unit; the old process, stopping, refuses to
// resume) or Promote first: a new process stopped alone gives serving back.
//
// Guarantees: a connection waiting in the kernel queue is served by
// whichever process resumes or remains; connections of the old process are
// drained normally, inside the window too, so that HTTP/2 clients (GOAWAY
// on their next answer) and gRPC clients on graceful/grpcdrain (GOAWAY at
// once) move to the new process right after the handoff. Limits: requests
// in flight inside a new process that crashes are lost with it; the bake
// watches exit and Check only, not error rates (canary analysis belongs to
// the canary and rollout packages); a plain *grpc.Server registered with
// GRPC keeps its connections on the old process for the window, since its
// GracefulStop cannot be undone (grpcdrain's Server can).
//
// # Upgrades while old processes drain (tableflip issue 52)
//
// Allowed. A new process may upgrade as soon as its parent's bake window
// is over (at once without a bake window) even if the parent still drains
// long connections: each process hands down its own descriptors and nothing
// waits for the parent's exit. The cost: up to DrainTimeout / (time between
// upgrades) old processes may drain at once, each holding its memory and
// connections. The limit is the bake window, for the reason above.
//
// # Draining
//
// [Upgrader.Shutdown] (and SIGTERM/SIGINT in [Upgrader.Run]) turns
// readiness not-ready, waits DrainDelay while still accepting so that load
// balancers notice, stops accepting, and drains; the handoff drains the old
// process the same way, without the delay. What a drain does:
//
//   - Answers written from then on (from before [Draining] reports the
//     drain, so a handler that answers when told does too) carry
//     Connection: close
//     ([Upgrader.DrainHandler], which [Upgrader.HTTP] applies to the
//     server's Handler): net/http closes an HTTP/1 connection right after
//     the answer, and an HTTP/2 server, net/http's or x/net's, turns the
//     header into GOAWAY, answers every stream in flight and closes once the
//     client's streams are done. So every flavour drains alike: HTTP/1,
//     HTTP/2 over TLS, unencrypted HTTP/2 through net/http's Protocols, and
//     x/net's h2c both with prior knowledge and through the HTTP/1.1
//     Upgrade; clients move on their next request, and the old process
//     exits as soon as its last connection is done. x/net's h2c serves each
//     h2c connection with the handler given to h2c.NewHandler, not the
//     server's, so write h2c.NewHandler(u.DrainHandler(mux), h2s).
//   - Long and hijacked connections are told to finish: handlers select on
//     [Draining](r.Context()), and the finish callback of [Upgrader.Track]
//     runs.
//   - gRPC servers registered with [Upgrader.GRPC] stop gracefully
//     (graceful/grpcdrain does it at the start of the drain, see there), and
//     the drain waits for GracefulStop.
//   - What is still open at the drain deadline (DrainTimeout, or ctx's
//     deadline if earlier) is closed; a second SIGTERM closes everything at
//     once.
//
// A connection from Listen that a handler hijacks (a WebSocket, h2c served
// by x/net) is waited for until it closes, and closed at the deadline, with
// no Track: graceful's listener hands out connections whose Close it
// notices. Track is for what it cannot see: raw protocols, connections that
// did not come from Listen, and for a finish callback instead of watching
// Draining. It takes the connection, a WebSocket library's connection
// (anything with Close), [CloseFunc] around a close function or
// [CancelFunc] around the cancel of the handler's context. A connection
// that sent nothing in the 5 s since it was accepted (a browser's
// preconnect) counts as idle, as in http.Server.Shutdown.
//
// The drained log event and the baton.graceful.drain.connections metric
// count as forced only what the deadline closed (one per connection, a
// tracked one counted once); drained is the rest. The drain's duration
// (took, baton.graceful.drain.duration) covers its whole wait, the final
// GracefulStop and HTTP/2 shutdown included, but not a bake window between
// the two.
//
// WebSockets with github.com/coder/websocket (the connection came from
// Listen, so nothing else is needed; the client reconnects on status 1001
// and lands on the new process):
//
//	ws, err := websocket.Accept(w, r, nil)
//	if err != nil { return }
//	defer ws.CloseNow()
//	go func() {
//		select {
//		case <-graceful.Draining(r.Context()):
//			ws.Close(websocket.StatusGoingAway, "server restarting")
//		case <-r.Context().Done():
//		}
//	}()
//	for { /* ws.Read, ws.Write */ }
//
// With github.com/gorilla/websocket, whose *Conn is an io.Closer, Track
// gives a finish callback that asks the peer to go:
//
//	ws, err := upgrader.Upgrade(w, r, nil)
//	if err != nil { return }
//	defer ws.Close()
//	defer u.Track(ws, func() {
//		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server restarting")
//		ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
//	})()
//	for { /* ws.ReadMessage, ws.WriteMessage */ }
//
// Keep-alive connections are not closed while idle at the start of a
// drain: closing one races with a client that reuses it at that instant,
// whose request then meets a closed connection (Go's transport silently
// resends idempotent requests; other clients fail). Busy connections end
// after their next answer, as above; a connection is closed while idle only
// once it has been idle for 1 s (at most half the drain time), which a
// client that is using it never is. The race remains for a client that
// reuses a connection after exactly that idle time, and for a connection
// whose answer was written before the drain began (no Connection: close)
// if the client reuses it just when its grace ends. An idle HTTP/2
// connection is closed the same way, without GOAWAY: the server can only
// send GOAWAY with an answer, or at Shutdown, which cannot be undone.
//
// # systemd
//
// With NOTIFY_SOCKET set (Type=notify): READY=1 on first start;
// RELOADING=1 with MONOTONIC_USEC at an upgrade; the new process sends
// MAINPID=<its pid> and READY=1 (the unit needs NotifyAccess=all); a
// failed upgrade or a rollback sends the old PID as MAINPID again;
// STOPPING=1 when draining. PIDFile is replaced atomically by the serving
// process. On a first start, sockets passed by systemd (LISTEN_FDS) are
// matched to Listen by address. See examples/systemd.
//
// # Platforms
//
// Linux has everything and is where the suite runs. macOS and the BSDs
// (any Unix) have the full handoff and bake window, with the descriptors
// made close-on-exec under syscall.ForkLock where the kernel cannot do it
// atomically (macOS), and no systemd pieces; they are built and vetted,
// not run, in CI. Windows has no descriptor passing: Listen, HTTP, GRPC,
// Track, Ready, Health, Shutdown, Close and the drain work, and
// UpgradeWith, Promote and Rollback return an error wrapping
// [ErrNotSupported] that names the platform; Run drains on Ctrl-C and on
// the console's close and shutdown events (SIGINT, SIGTERM).
//
// # Observability
//
// Metrics (no-op unless MeterProvider is set): baton.graceful.upgrades
// {outcome=succeeded|failed|rolled_back}, baton.graceful.handoff.duration,
// baton.graceful.drain.connections {result=drained|forced},
// baton.graceful.drain.duration. Each Upgrade is a span, graceful.upgrade,
// with the outcome and the new process's PID (no-op unless TracerProvider
// is set). Events go to Logger (discarded if nil).
//
// # Other limits
//
// One Upgrader per process. Lifecycle signals
// are caught from New on, so one arriving before Run is queued instead of
// killing the process. Packet sockets (UDP, unixgram) are inherited but
// cannot be paused: both processes may read during a handoff. A process
// SIGKILLed loses the connections it had accepted; if the old process is
// killed before the new one has read its descriptors, nobody serves and the
// service manager must restart it. The wire protocol is tableflip v1.2.3's
// (sentinel variable, descriptors 3 and 4, gob-encoded names), so a
// tableflip process can upgrade into a graceful one.
package graceful
