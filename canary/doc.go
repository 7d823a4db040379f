// Package canary sends a share of HTTP traffic to a new version inside the
// service, measures both versions side by side, and decides: no mesh, no
// ingress, no metrics server.
//
// # Lifecycle
//
// A Splitter (New) is an http.Handler in front of two targets: Stable and
// Canary, each an http.Handler in this binary or an *Upstream, a reverse
// proxy to another process on a TCP port or a Unix socket. The weight, in
// basis points (500 = 5%), is changed at run time by SetWeight, an atomic
// store that the next request sees. Halt sends everyone to stable.
//
// A Controller (NewController) walks the splitter through Steps. Every
// Interval it analyses canary against stable over the same sliding window
// (Evaluate, or Run which does it on a ticker): a Fail aborts at once
// (weight 0, segments off, the reason in words in Status and the event); a
// Pass, once the step's MinDuration and MinSamples are met, moves to the
// next step, and after the last one to 100% (Promoted). Insufficient data
// holds the step and never aborts. Promote, Abort, Pause and Resume act by
// hand; OnEvent receives every transition. Status is a snapshot for
// dashboards and the rollout package.
//
// The rollout package (or any orchestrator) needs three calls:
// Splitter.SetWeight(bp) to move traffic, Controller.Status() for a
// snapshot, and Controller.Analyze(ctx) for a verdict it acts on itself
// (Evaluate acts too).
//
// Close a Splitter to stop mirroring and unregister its metrics; Shutdown
// first waits for mirrored copies in flight. Close an Upstream to drop its
// idle connections. Routed requests belong to the http.Server.
//
// # Assignment
//
// Order of precedence for each request:
//
//  1. Override header (X-Canary: always|never, or canary|stable), unless
//     Override.Disabled; with Override.Secret set it counts only when
//     X-Canary-Secret matches (constant-time compare). Use a secret, or
//     disable it, wherever untrusted clients can reach the service.
//  2. Halted (after an abort): stable.
//  3. Segments, in order (header, cookie, key lists, or any func): canary,
//     whatever the weight.
//  4. The sticky key (KeyOptions: a func such as a user ID from the
//     context, then a header, then a cookie, then the assigned cookie):
//     canary iff bucket.Of(murmur3(salt+key), 10000) < weight, the same
//     bucketing as flags, so a user in at 5% stays in at 10%, no user flips
//     while the weight stays constant, and with the same salt a flag's
//     percentage and the canary pick the same users.
//  5. No key: a random draw against the weight (math/rand/v2, no lock), or,
//     with KeyOptions.AssignCookie, a random key set as a cookie so that
//     the browser stays on its variant.
//
// # Metrics
//
// Per variant (stable, canary, mirror): requests, errors (5xx responses,
// recovered panics, unreachable upstreams) and latency, in a ring of
// per-interval log-linear histograms (16 sub-buckets per power of two, 384
// buckets from 1 µs to 137 s, quantiles interpolated within a bucket of
// at most 6.25%) with atomic counters.
// Memory is fixed: about 3 KiB per interval per variant, so 300 KiB for the
// default 5-minute window at 10-second resolution. Exported through
// OpenTelemetry as baton.canary.requests, baton.canary.errors and
// baton.canary.canceled (counters), baton.canary.latency.p50/p99 and baton.canary.weight
// (gauges), each with a "variant" attribute, read at collection time.
//
// A request whose client goes away (its context canceled) and that ends
// in a 5xx or an aborted response is counted as canceled, not as a request
// nor an error: the 502 an Upstream answers when the client hangs up says
// nothing about the upstream, and counting it would fail the slower
// variant. Metrics.Canceled and baton.canary.canceled report these.
//
// A panic in a target is recovered and answered with 500 if nothing was
// written; after a partial response the connection is aborted
// (http.ErrAbortHandler) so the client cannot take it for complete.
//
// # Analysis
//
// Each check compares the two variants over the same window:
//
//   - error rate: exact one-sided two-proportion test (Fisher's conditional
//     test; the pooled z-test overstates significance tenfold with a handful
//     of canary errors);
//   - latency: one-sided Mann-Whitney U on the histogram buckets with tie
//     correction (Kayenta's approach), failing only if the canary median is
//     also LatencyMargin (5%) above stable's;
//   - latency tail: exact test on the share of requests above the pooled
//     p99 (valid because the threshold depends only on the pooled data),
//     failing only if the canary p99 is also LatencyMargin above stable's;
//   - optional absolute limits: MaxErrorRate, MaxP99.
//
// Nothing is compared until each variant has MinSamples (100) requests in
// the window: until then the verdict is Insufficient.
//
// Repeated checks are bounded by alpha spending. Check k (counting only
// checks where a test ran) is tested at the increment of a Lan-DeMets
// spending function (Pocock by default, O'Brien-Fleming optional) over the
// planned number of checks, split evenly over the three tests; 20% of Alpha
// is reserved for checks beyond the plan (a paused or slow step), spent as
// 6/(π²j²). The levels of all checks sum to at most Alpha (1%), so by the
// union bound a canary no worse than stable is rolled back with probability
// at most 1% over the whole rollout, whatever the correlation between
// overlapping windows.
//
// # Measured figures
//
// Simulations on a manual clock, 200 requests/s, 5% then 25% then 50%
// weight, one minute each, checks every 10 s over a 60 s window, log-normal
// latency (median 20 ms, sigma 0.8), 0.1% errors on stable:
//
//   - A/A (canary identical to stable): 42 of 10,000 rollouts rolled back
//     (0.42%, by BATON_AA_RUNS=10000 go test -run 'TestSimAA$' -v), 7 of
//     the 1,000 that TestSimAA runs by default (0.7%). Testing every check
//     at the whole 1% instead (no spending) rolls back 82 of those 1,000
//     (8.2%).
//   - canary errors 0.1% -> 2% at 5% weight: rolled back 31 s after the
//     change on average, 50 s at worst over 20 seeds.
//   - canary latency x1.5 (p99 +50%) at 5% weight: 22.5 s on average, 30 s
//     at worst.
//   - With OBrienFleming spending instead: A/A 8 of 2,000 (0.4%); errors
//     caught in 38.5 s on average (50 s worst), latency in 28.5 s (30 s):
//     no fewer false rollbacks here and slower detection, hence Pocock by
//     default.
//
// Hot path (go test -run '^$' -bench . -benchmem ./canary/, 2 cores): the
// routing decision for a keyed request 29 ns and recording an outcome 60 ns,
// both without allocation; the full ServeHTTP with handler targets about
// 160 ns against 3.6 ns for calling the handler directly, with one 32-byte
// allocation (the status recorder, deliberately not pooled).
//
// # Mirroring
//
// With Options.Mirror, a copy of stable requests goes to the canary handler
// with an X-Baton-Mirror: 1 header, once the stable handler has returned
// (the real request pays only for cloning its headers); the canary's answer
// is discarded and recorded as variant Mirror, apart
// from real canary traffic. At most MaxConcurrent copies run; when all are
// busy the copy is dropped and counted. Bodies are captured as the stable
// handler reads them, up to MaxBody; larger, unknown-length or unread
// bodies are not mirrored. Make the canary skip side effects on mirrored
// requests. The splitter removes that header from every incoming request
// (with or without mirroring), so a client cannot spoof it; a canary
// reachable other than through the splitter must not trust it.
//
// # Known limits
//
//   - Routed requests are split per request, not per connection: a
//     WebSocket stays on the variant it was routed to.
//   - Run ticks on the real clock; simulations call Evaluate.
//   - Latency tests assume both variants run on comparable machines; two
//     processes on different hosts or transports can differ for reasons
//     unrelated to the code (use SkipLatency or LatencyMargin).
//   - The window's newest interval is partial. A goroutine stalled between
//     reading the clock and counting for longer than the whole window could
//     count into a slot already reused by a newer interval.
//   - Mirror analysis (canary on mirrored traffic against stable) is not
//     automated: read Metrics().Snapshot().Of(Mirror).
package canary
