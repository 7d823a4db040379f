// Package traffic gives a fleet one canary: one weight, one assignment of
// keys to variants, and one verdict for every host. It stands on package
// fleet (etcd or PostgreSQL) and applies what is shared through canary's
// own API; package canary knows nothing of the fleet.
//
// # Lifecycle
//
// Every host runs a splitter, follows the fleet's canary document and
// publishes its measurements:
//
//	sp, _ := canary.New(canary.Options{Stable: v1, Canary: v2, Salt: "checkout-v2", Key: keys})
//	f, _ := traffic.Follow(m, traffic.FollowOptions{Splitter: sp, Target: "v2", CacheFile: "/var/lib/svc/canary.cache"})
//	defer f.Close()
//	p, _ := traffic.Publish(m, traffic.PublishOptions{Metrics: sp.Metrics()})
//	defer p.Close()
//
// The driver's plan sets the weight and judges the canary on the fleet's
// data (rollout's set-weight, canary and analysis steps take them as their
// WeightSetter and Analyzer):
//
//	weights := traffic.LeadWeights(lead, traffic.WeightsOptions{Salt: "checkout-v2", Target: "v2"})
//	verdict, _ := traffic.NewAnalyzer(lead.Member(), traffic.AnalyzerOptions{})
//
// # One weight
//
// The weight, the salt and the target are one document, Canary, at
// Key(layout, name) (ns/shared/canary/<name>). The driver writes it
// through LeadWeights, fenced by its leadership (a deposed driver's
// weight is refused by the engine, never applied); an operator's tool may
// write it through MemberWeights. Every host's Follower watches it (a
// fleet.Mirror) and applies each version with Splitter.SetWeight, the
// atomic store the next request sees. A host whose splitter hashes with
// another salt, or serves another canary than the document's Target,
// refuses the document and halts its canary (Splitter.Halt): a host that
// cannot split as the fleet does sends everyone to stable rather than
// split differently. Each host reports the weight it has in force
// (fleet.Member.ReportApplied, at ns/applied/<member>/canary/<name>,
// under its lease), which the console's fleet page shows per host
// (fleet.Registry.Hosts).
//
// With FollowOptions.CacheFile, every new revision is also written to
// local disk (atomically, 0600), and Follow applies the cached document
// before it returns: a host restarted while the engine is down serves the
// fleet's last weight, reported Stale and FromCache, and catches up when
// the engine answers.
//
// # Sticky across hosts
//
// A keyed request goes to the canary iff bucket(murmur3(salt+key)) is
// below the weight, the same function on every host. So once every host
// has applied a document, one key gets one variant on all of them; and a
// key in the canary at a weight stays in at any higher weight (raising
// the weight only moves keys from stable to canary). Requests without a
// key are drawn at random on each host and are not sticky anywhere.
//
// # Fleet-wide analysis
//
// Each host's Publisher writes its canary.Snapshot (per interval of the
// window: counts, errors, latency histogram buckets, key groups, and the
// weight the interval ran at) every Interval at MetricsKey(layout, member,
// name) (ns/metrics/<member>/<name>), under the member's lease. The
// driver's Analyzer lists them, keeps those of live members taken within
// MaxAge at the weight of the fleet's canary document (just after a
// change, a host that has not yet applied or published it is left out
// rather than judged as the new step), merges them (Merge, which is
// canary.Snapshot.Merge: counts and
// histograms add up exactly) and runs canary's analysis on the merge, as
// on one splitter that saw the fleet's traffic. Its Decision says which
// hosts it merged, which it left out and why, and how many requests the
// compared window held; as a rollout.Analyzer its reason starts with
// "fleet analysis (<hosts> hosts, <requests> requests)", so the rollout's
// decision records them. With fewer than AnalyzerOptions.MinHosts hosts
// merged (one by default) the decision is inconclusive and spends no
// look: set it to the fleet's size to judge each step only once every
// host has applied and published it.
//
// A host that dies, is stopped or is cut off stops publishing: its
// snapshot is left out once older than MaxAge (DefaultMaxAge, three
// publications), and deleted by the engine when its lease expires. Its
// samples so age out of the fleet's analysis; the analysis goes on with
// the others' (their window restarts only at a weight change).
//
// # Guarantees
//
//   - A weight written through LeadWeights is refused once the driver's
//     leadership is lost.
//   - Every host that reaches the engine applies the latest document
//     within the engine's watch delay (see BENCHMARKS.md); a host applies
//     documents in revision order and may skip versions superseded before
//     it saw them.
//   - Hosts that applied the same document route every key alike.
//   - The merged analysis counts each host's requests once: each host's
//     snapshot is merged at most once per decision, and only the latest
//     one of each host is kept.
//
// # Known limits
//
//   - During a change, hosts switch at slightly different moments (the
//     propagation delay): a key can get the old variant on one host and
//     the new one on another for that long. The analysis is unaffected
//     (the interval of a change is left out on every host).
//   - Without FollowOptions.CacheFile, a host that starts while the
//     engine is unreachable serves canary.Options.Weight until it reaches
//     the engine. Start splitters at 0, or give each host a cache.
//   - While a host is stale it keeps the last weight it applied, and its
//     snapshot ages out of the analysis once it can no longer publish.
//   - Snapshots are whole documents, written every Interval by every host:
//     the engine's write load grows with hosts / Interval, and a snapshot
//     must fit the engine's document limit (fleet.MaxValueSize). For very
//     large fleets use a metrics system (Prometheus) instead.
//   - The alpha-spending count of looks lives in the driver's Analyzer: a
//     driver that takes a rollout over starts the budget of the step it
//     resumes afresh, so a rollout with takeovers spends a little more
//     than Alpha on false rollbacks (at most Alpha per driver).
//   - Hosts' clocks align intervals; a host whose clock is off by more
//     than a Resolution adds its requests to other intervals than its
//     peers (and its snapshot may be aged out as too old).
package traffic
