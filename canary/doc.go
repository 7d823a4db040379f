// Package canary sends a share of HTTP (and gRPC) traffic to a new version
// inside the service, measures both versions side by side, and decides: no
// mesh, no ingress, no metrics server.
//
// # Lifecycle
//
// A Splitter (New) is an http.Handler in front of two targets: Stable and
// Canary, each an http.Handler in this binary (a grpc.Server is one) or an
// *Upstream, a reverse proxy to another process on a TCP port or a Unix
// socket, over HTTP/1.1 or cleartext HTTP/2 (UpstreamOptions.H2C). The
// weight, in basis points (500 = 5%), is changed at run time by SetWeight,
// an atomic store that the next request sees. Halt sends everyone to
// stable.
//
// Two engines can move the weight, and they share everything but their
// loop (the Splitter, its metrics, the Analyzer and its verdicts):
//
//   - A Controller (NewController) is for a service that uses canary
//     alone: it walks the splitter through Steps on its own ticker (Run)
//     or on the caller's (Evaluate), with Promote, Abort, Pause and Resume
//     by hand, OnEvent for every transition and Status for dashboards.
//   - The rollout package's canary strategy is for a canary that is one
//     part of a plan (an upgrade, a migration, a flag ramp): its steps set
//     the weight through Splitter.SetWeight and judge it with this
//     package's Analyzer through the adapter in rollout's bind package;
//     rollout persists the progress, which a Controller does not. rollout
//     does not use Controller.
//
// A Controller checks every Interval: a Fail aborts at once (weight 0,
// segments off, the reason in words in Status and the event); a Pass, once
// the step's MinDuration and MinSamples are met, moves to the next step,
// and after the last one to 100% (PhaseSucceeded). Inconclusive holds the
// step; at the step's MaxDuration without a Pass, OnDeadline decides: Hold
// (the default) pauses at that weight and says why, FailInconclusive
// aborts. Nothing is promoted without evidence.
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
//     while the weight stays constant, the same key gets the same variant
//     on every host, and with the same salt a flag's percentage and the
//     canary pick the same users.
//  5. No key: a random draw against the weight (math/rand/v2, no lock), or,
//     with KeyOptions.AssignCookie, a random key set as a cookie so that
//     the browser stays on its variant.
//
// # Metrics
//
// Per variant (stable, canary, mirror) and per interval of a sliding
// window (Resolution, 10 s by default, over Window, 5 minutes): requests,
// errors, a log-linear latency histogram (16 sub-buckets per power of two,
// 384 buckets from 1 µs to 137 s, quantiles within 6.25%), the requests
// above the interval's tail cut, and for keyed requests sums per key group
// (KeyGroups of them). What counts as an error is the Classifier's
// decision (Options.Classify): HTTPErrors (5xx, the default) or
// GRPCErrors, which reads grpc-status from the trailers and counts the
// server-side codes (Unknown, DeadlineExceeded, Unimplemented, Internal,
// Unavailable, DataLoss) but not answers such as NotFound or
// InvalidArgument. Recovered panics are always errors.
//
// The metrics also record when the weight changed, so that each interval
// of a Snapshot says which weight it ran at. A Snapshot is mergeable
// (Merge adds counts, histograms and key groups exactly) and serialisable
// (JSON): hosts of a fleet publish theirs, and one Analyzer judges the
// merge as it judges one splitter's.
//
// Memory is fixed: about 5 KiB per interval for stable and for canary and
// 3 KiB for mirror, so 400 KiB for the default window. Exported through
// OpenTelemetry as baton.canary.requests, baton.canary.errors and
// baton.canary.canceled (counters), baton.canary.latency.p50/p99 and
// baton.canary.weight (gauges), read at collection time, and
// baton.canary.latency, a histogram over LatencyBuckets of every request
// the splitter serves (the one instrument the request path pays for, and
// only with a MeterProvider), which a metrics server can merge across
// hosts; each but the weight with a "variant" attribute.
//
// A request whose client goes away (its context canceled) and that ends
// in an error or an aborted response is counted as canceled, not as a
// request nor an error: the 502 an Upstream answers when the client hangs
// up says nothing about the upstream, and counting it would fail the
// slower variant. Metrics.Canceled and baton.canary.canceled report these.
//
// A panic in a target is recovered and answered with 500 if nothing was
// written; after a partial response the connection is aborted
// (http.ErrAbortHandler) so the client cannot take it for complete.
//
// # Analysis: the model
//
// What is compared with what. A check compares canary and stable over the
// intervals that ran at the current weight since it last changed
// (Snapshot.Current), up to the window; the interval in which the weight
// changed is left out. Within those intervals both variants are sampled at
// one constant assignment probability, so anything that hits both alike (a
// burst of errors from a shared dependency, a slow database, a daily peak)
// cancels out: this is a randomised experiment, and the tests below are
// valid as randomisation tests. Pooling intervals of different weights
// would not be (after 5% -> 25% the canary's share leans to the newer
// intervals), which is why a step starts the comparison afresh.
//
// The unit of assignment. A request without a key is assigned on its own;
// a keyed request is assigned with every other request of its key. Requests
// of one key resemble each other (one client's payloads, one tenant's
// data), so they are not independent samples: treating them so overstates
// the evidence. Keyed requests are summed in KeyGroups groups by a hash of
// the key (the same on every host); the variance between groups around
// each variant's mean, against the variance of independent requests, is
// the design effect (a cluster-robust variance over key groups). The
// larger of the design effect pooled over both variants and the canary's
// own, and never less than 1, inflates the latency test's variance and
// divides the counts of the exact tests (Rao and Scott's correction).
// Without keys it is exactly 1 and costs nothing.
//
// The tests. Each is a one-sided test of a null shifted by its margin, so
// that a canary within the margin is rolled back with probability at most
// the level, however much traffic there is:
//
//   - error rate: "canary rate <= stable rate + ErrorMargin" by Fisher's
//     exact conditional test (ErrorMargin 0, the default) or a z-test; it
//     needs no minimum sample: 20 failures of 20 against 1 of 1,400 is
//     conclusive;
//   - latency: "canary latency <= stable latency x (1+LatencyMargin)"
//     (5%), on the mean of the log latency (the histogram's bucket index,
//     16 per doubling), a z-test once each variant has MinSamples (100);
//   - latency tail: "canary rate above the tail cut <= (1+TailMargin) x
//     stable's" (50%), exact given the total above the cut. The cut is
//     fixed when an interval opens, at the TailQuantile (p99) of the
//     previous interval, so it cannot depend on how the interval's own
//     requests were split;
//   - optional absolute limits: MaxErrorRate, MaxP99.
//
// Positive evidence. A Pass needs more than "not significant": the error
// rate and the latency must each pass a non-inferiority test at PassLevel
// (1%): the data must rule out an error rate PassErrorMargin (0.5 point)
// above stable's and a slowdown of PassLatencyMargin (the LatencyMargin,
// 5%) before the weight goes to 100%. Before a step that is not the last,
// a Controller asks the latency to rule out StepLatencyMargin (twice
// that, 10%) instead: the next step tests the canary again, on more
// traffic, and nothing reaches 100% without the full margin; at 5% of the
// traffic ruling out 5% would take a few thousand canary requests, more
// than most first steps see. The tail test and the limits can only fail
// a canary. Neither failing nor passing is Inconclusive, and a Controller
// holds the weight.
//
// The boundary. The tests share Alpha (1%): 35% for the error rate, 50%
// for the latency, 15% for the tail (union bound over the tests). Each
// test's share is spent over its looks by a Lan-DeMets spending function
// (Pocock by default, O'Brien-Fleming optional) over the planned number
// of looks, with 20% kept for looks beyond the plan (a held or paused
// step), spent as 6/(π²j²); a look is spent only when its test can run
// and could reject (an exact test with too few errors to reach the level
// spends nothing), so thin traffic does not use the budget up.
//
// How a look uses what it spends depends on what the statistic's joint
// law is known to be. The latency test's looks at one weight, before the
// window slides past the step's first data, see a sample that only grows;
// with independent requests their z-statistics are a Brownian motion in
// the information (1/variance), so each look is tested at the
// group-sequential boundary that makes the probability of rejecting there
// for the first time equal to what it spends (Armitage, McPherson and
// Rowe's recursion, by numerical integration, with the information
// actually observed). Correlated looks so get a nominal level above their
// spending increment, more so the more looks a step has. Every other look is tested at its increment alone, the union
// bound, which holds whatever the dependence: the exact error and tail
// tests (discrete counts, whose joint law is not the Brownian one), the
// latency with sticky keys (a key's requests stay alike from look to look
// beyond what the information captures), a look whose information did not
// grow, and a window that slid. Either way the probability of any false
// rollback is at most the sum spent, Alpha, over the whole rollout; a new
// weight starts a new sequence of looks, on new data.
//
// Measured false-rollback and detection figures, with the commands, are in
// BENCHMARKS.md (canary).
//
// # Mirroring
//
// With Options.Mirror, a copy of stable requests goes to the canary handler
// with an X-Baton-Mirror: 1 header, once the stable handler has returned
// (the real request pays only for cloning its headers); the canary's answer
// is discarded and recorded as variant Mirror, apart from real canary
// traffic. At most MaxConcurrent copies run; when all are busy the copy is
// dropped and counted. Bodies are captured as the stable handler reads
// them (the buffer grows with what arrives), up to MaxBody; larger,
// unknown-length or unread bodies are not mirrored. Make the canary skip
// side effects on mirrored requests. The splitter removes that header from
// every incoming request, in every spelling a CGI-style stack reads as the
// same (case, '_' for '-'), with or without mirroring, so a client cannot
// spoof it; a canary reachable other than through the splitter must not
// trust it.
//
// # Known limits
//
//   - Routed requests are split per request, not per connection: a
//     WebSocket, or a gRPC stream, stays on the variant it was routed to
//     and counts once, when it ends.
//   - The analysis restarts at each weight: evidence gathered at 5% is not
//     carried to 25%. At a low weight on thin traffic a healthy canary may
//     not reach a Pass before its deadline (it is held, not promoted).
//   - With sticky keys whose latency differs from key to key, the evidence
//     grows with the number of keys on the canary, not with its requests:
//     when a low weight puts a few dozen such keys on the canary, no step
//     is long enough to rule out the step margin, and a healthy canary is
//     held until more keys are in (a larger weight, by hand) or the
//     margins widen.
//   - The latency test is a test of the typical latency (geometric mean);
//     a regression of the slowest 1% alone is the tail test's, which can
//     fail a canary but never vouch for one.
//   - Each host fixes its own tail cut; a merged snapshot adds counts
//     above slightly different cuts (each exact for its host), so its tail
//     test differs a little from one splitter's seeing all the traffic.
//   - Latency tests assume both variants run on comparable machines; two
//     processes on different hosts or transports can differ for reasons
//     unrelated to the code (use SkipLatency or LatencyMargin).
//   - The window's newest interval is partial. A goroutine stalled between
//     reading the clock and counting for longer than the whole window could
//     count into a slot already reused by a newer interval.
//   - A request routed just before a weight change and finishing after the
//     interval of the change counts at the new weight.
//   - Run ticks on the real clock; simulations call Evaluate.
//   - Mirror analysis (canary on mirrored traffic against stable) is not
//     automated: read Metrics().Snapshot().All().Of(Mirror).
package canary
