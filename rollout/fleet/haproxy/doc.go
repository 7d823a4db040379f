// Package haproxy is blue-green behind a real load balancer: HAProxy,
// driven through its Runtime API (the admin socket), with no library and
// no reload of its configuration. It is the only package of baton that
// speaks to HAProxy; rollout does not import it.
//
// # Lifecycle
//
// A backend holds two groups of servers, blue (serving) and green (the
// new version, started beside it, often "disabled" in the
// configuration). A Switch moves the traffic between them:
//
//	c, _ := haproxy.NewClient("/run/haproxy/admin.sock", haproxy.ClientOptions{})
//	sw, _ := haproxy.NewSwitch(haproxy.SwitchOptions{
//		Client:  c,
//		Backend: "app",
//		Blue:    haproxy.Group{Servers: []string{"blue1", "blue2"}},
//		Green:   haproxy.Group{Servers: []string{"green1", "green2"}},
//	})
//	plan := rollout.Plan{ID: "app-v2", Steps: []rollout.Step{
//		startGreen, // a rollout.Hook that starts v2, and stops it on rollback
//		rollout.Analyze(smoke, rollout.AnalysisOptions{}),
//		sw.Step(), // the switch; its rollback flips back
//		rollout.Analyze(health, rollout.AnalysisOptions{Count: 10, Interval: time.Minute}), // the bake
//		stopBlue, // a Hook: blue is drained, stopping it loses nothing
//	}}
//
// Switch.ToGreen, one call, does the whole switch:
//
//  1. every green server is set ready (and to Group.Weight when set);
//  2. it waits until every green server is up with a weight, and has passed
//     a health check when the backend has checks (ReadyTimeout): draining
//     blue before green serves would leave the backend with no server;
//  3. every blue server is set to drain: HAProxy sends it no new request,
//     and the requests in progress finish;
//  4. it waits until blue has no session and no queued request in "show
//     stat" (DrainTimeout).
//
// Switch.ToBlue is the flip back, the same four steps with the colours
// exchanged. Switch.Step wraps both as one rollout step (a rollout.Hook
// named "haproxy-switch-<backend>" whose rollback is ToBlue), so a failed
// analysis or bake after the switch, or an operator's abort, flips the
// load balancer back.
//
// # Guarantees
//
//   - The switch is one step: a plan has one switch step, not a sequence
//     of weight changes, and its outcome is recorded once.
//   - Drains are respected: the outgoing group is drained, never put in
//     maintenance, and ToGreen (ToBlue) returns nil only once HAProxy
//     reports no session left on it. From then on no request is in
//     progress on the old group and none is sent there: its processes may
//     be stopped. A drain that outlasts DrainTimeout is an ErrDrainTimeout
//     naming each server and its sessions, unless AllowUndrained.
//   - The incoming group serves before the outgoing one drains, so both
//     serve for a moment (as in any blue-green switch, the two versions
//     must be compatible) and the backend never has no server.
//   - Rollback flips back: ToBlue restores blue's traffic as it was (blue
//     must still run: keep it until the bake is over) and drains green.
//   - Idempotent: every command sets an absolute state, so a switch
//     repeated, or re-run by a driver after a crash in its middle (the
//     rollout's at-least-once step), ends in the same state as one run.
//   - Nothing a caller passes can add a command: backend and server names
//     are checked (letters, digits, '-', '_', '.', ':') before anything
//     is sent, and every command is built from fixed words. Every answer
//     is bounded in size (ClientOptions.MaxReply) and every command in
//     time (ClientOptions.Timeout and the context).
//   - Errors say what HAProxy said and where: a *CommandError carries the
//     command and HAProxy's reply ("No such server."), a *GroupError the
//     servers that were not up or not drained and their state.
//
// # Running an HAProxy: examples, tests, load programs
//
// Start runs an HAProxy of its own in front of servers on given
// addresses: it writes a Config (one listen section per Backend, HTTP
// mode, an admin socket at level admin, mode 0600, in Config.Dir or a
// directory of its own), binds the listening sockets itself and hands
// them over (so Process.Addr is known and no port is raced for), and
// returns once the admin socket answers:
//
//	p, err := haproxy.Start(ctx, haproxy.Config{Backends: []haproxy.Backend{{
//		Name:       "app",
//		HealthPath: "/healthz", // optional: HTTP checks
//		Retry:      true,       // optional: another server when one dies before answering
//		Servers: []haproxy.Server{
//			{Name: "host1", Address: "127.0.0.2:8080"},
//			{Name: "host2", Address: "127.0.0.3:8080"},
//			{Name: "host3", Address: "127.0.0.4:8080"},
//		},
//	}}})
//	defer p.Close()                                      // or p.Shutdown(ctx): soft stop
//	url := "http://" + p.Addr("app") + "/"               // where clients go
//	err = p.Client().SetState(ctx, "app", "host2", haproxy.Drain) // and back with haproxy.Ready
//
// A server whose address is not known when HAProxy starts (an instance
// that picks its port) is given no Address: it starts in maintenance, and
// Client.SetAddr then Client.SetState(Ready) bring it in, again whenever
// the instance comes back on another port.
//
// Package haproxytest adds Start for tests (skipping, with the reason,
// when there is no haproxy), HTTP backends that answer their version, and
// a load of clients that records every request. Find locates the
// executable: $BATON_HAPROXY, PATH, /usr/sbin/haproxy.
//
// # Known limits
//
//   - One HAProxy per Switch. Several load balancers in front of the same
//     servers need a Switch each, switched in turn; between two of them
//     clients of each see a different colour.
//   - "Drained" is HAProxy's count of sessions on the server. A request
//     that reached the backend by another path is not seen, and neither
//     are idle keep-alive connections to the server, which HAProxy closes
//     by itself.
//   - Long-lived sessions (WebSockets, streams) keep a drain from ending;
//     bound them with DrainTimeout and choose AllowUndrained, or end them
//     in the application.
//   - Readiness is what HAProxy knows: without health checks a green
//     server is "up" as soon as it is ready, whether its process answers
//     or not. With checks, the last check's result is trusted: a server
//     put in maintenance by hand whose process died since shows its old
//     result until a check fails.
//   - Cookie or stick-table persistence keeps sending persistent clients
//     to a draining server (HAProxy's drain lets them through); the drain
//     then ends only when those clients go.
//   - Changes through the Runtime API live in HAProxy's memory: a reload
//     or restart returns to the configuration's states, unless HAProxy
//     saves them (server-state-file) or the configuration is updated.
//   - Start is for tests, examples and load programs (a foreground
//     HAProxy owned by the Go process, unix systems only); production
//     HAProxy is run by its service manager.
package haproxy
