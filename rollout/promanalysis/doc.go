// Package promanalysis is a rollout.Analyzer that judges a canary from
// Prometheus: PromQL range queries over the HTTP API for the requests,
// errors and latency buckets of each variant, and the same tests as
// canary's own analysis where the data allows them. Use it when the fleet
// is too large, or too mixed, for the hosts to merge canary snapshots:
// every instance exports canary's OpenTelemetry metrics (through the
// OpenTelemetry Prometheus exporter, or any exporter Prometheus scrapes)
// and one analyzer asks Prometheus.
//
// This is the only package of baton that imports the Prometheus client.
//
// # Lifecycle
//
// New checks the options (and parses the query templates) without
// contacting Prometheus. Each Analyze (or Measure, which returns the whole
// Report) runs, for the window ending now and aligned to Step:
//
//  1. the weight query: only the steps since the canary's weight last
//     changed are compared, and the step holding the change is left out,
//     as canary's analysis compares only what ran at the current weight;
//  2. per variant, the requests and errors of each step (increase() of
//     the counters), added up into counts;
//  3. per variant, the latency buckets of each step (increase() of the
//     histogram's _bucket series, by le), added up into one distribution.
//
// A failed query is an error, which rollout counts as an Inconclusive
// measurement; so is a query that returns more than 1,000 series or
// something other than a range vector. Each query is bounded by Timeout.
// The rollout plans the looks (rollout.LookPlanner); PlanLooks starts a
// new alpha-spending sequence.
//
// # The tests
//
//   - Error rate: "canary rate <= stable rate + ErrorMargin" by Fisher's
//     exact conditional test on the counts (ErrorMargin 0, the default;
//     a z-test with a margin). A look is spent only when the errors seen
//     could reject at its level.
//   - Latency: "canary latency <= stable latency x (1+LatencyMargin)"
//     (5%), a z-test of the mean log latency, each request counted at the
//     log of its bucket's geometric middle, once each variant has
//     MinRequests (100) in the buckets.
//   - A Pass needs positive evidence: both tests' non-inferiority
//     counterparts must rule out PassErrorMargin (0.5 point) and
//     PassLatencyMargin at PassLevel (1%). Otherwise the verdict is
//     Inconclusive.
//   - MaxErrorRate and MaxLatency (the canary's p99 from its buckets)
//     are absolute limits, Flagger's and Argo Rollouts' kind of check;
//     they can only fail a canary.
//
// Alpha (1%) is split evenly between the two tests and spent over the
// planned looks with Pocock's spending function and a reserve for looks
// beyond the plan (internal/stats): by the union bound a canary within the
// margins fails any analysis of the rollout with probability at most
// Alpha, when the counts are what the tests assume.
//
// Where counters or buckets are missing, Queries.ErrorRate and
// Queries.Latency replace the tests by thresholds on what they return
// (canary's error ratio at most stable's + ErrorMargin, its latency at
// most stable's x (1+LatencyMargin)), averaged over the steps: simple, as
// the fixed thresholds of Flagger or Argo Rollouts are, and not tests:
// they bound nothing and ignore how much traffic there was.
//
// # Queries and escaping
//
// Queries are text/template templates rendered per variant with
// .Selector, .Matchers, .Common, .CommonMatchers, .Variant and .Range; the
// defaults read baton_canary_requests_total, baton_canary_errors_total,
// baton_canary_latency_seconds_bucket and baton_canary_weight_ratio, the
// names canary's instruments get from the OpenTelemetry Prometheus
// exporter. Everything substituted comes from Options and is escaped:
// label names must match [a-zA-Z_][a-zA-Z0-9_]* (and not start with __),
// label values are written as quoted string literals (QuoteLabelValue),
// so a value cannot end its selector; the template text is the
// operator's PromQL and runs as written.
//
// # Known limits
//
//   - increase() extrapolates to the ends of each step, so counts are
//     estimates (rounded for the exact test), and a counter reset inside
//     a step (a restart) loses that step's increase before the reset.
//     Step must be at least twice the scrape interval.
//   - Prometheus has no unit of assignment: requests are treated as
//     independent. With sticky keys whose requests resemble each other
//     the tests overstate the evidence (canary's own analysis corrects
//     for it from its key groups; this one cannot): widen the margins.
//   - The latency test works at the resolution of the buckets: a
//     slowdown that stays within one bucket is seen only through the
//     requests it moves across a bound. canary.LatencyBuckets (powers of
//     √2) keeps that small.
//   - The newest step may not be scraped yet; the steps of the window
//     that Prometheus has not filled count as no traffic.
//   - Prometheus's own delays (scrape interval, step) set the earliest a
//     regression can be seen: a step or two later than canary's analysis
//     in the process.
package promanalysis
