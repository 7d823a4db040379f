// Package flags is in-process feature flagging: a service ships code
// disabled and turns it on progressively, for segments of users and by
// sticky percentages, with no flag server. Definitions come from code
// (Store.Set), from JSON or YAML files that are reloaded when they change
// (FileSource), from whole versioned documents that a fleet's transport
// delivers (DocumentSource), and from run-time changes (Store.SetDisabled,
// Store.SetPercent, the admin handler, or a document's overrides).
// Package flags/openfeature serves a Store to the OpenFeature Go SDK.
//
// # Lifecycle
//
//	store, err := flags.New(flags.Options{Logger: log, MeterProvider: mp})
//	defer store.Close()
//	src, err := flags.NewFileSource(store, flags.FileOptions{Paths: []string{"flags.yaml"}})
//	defer src.Close()
//	on := store.Bool("new-checkout", flags.EvalContext{TargetingKey: userID, Attributes: attrs}, false)
//
// New starts one goroutine, a coarse clock (see DefaultClockResolution),
// which Close stops; NewFileSource starts one more, the file watch, which
// its Close stops. A DocumentSource starts none: its transport's goroutine
// calls it. Close the sources first. Evaluations keep working after Close,
// on the last configuration.
//
// # Evaluation
//
// A flag is evaluated in this order: a disabled flag serves its off variant
// (reason DISABLED); each prerequisite must serve one of its listed variants,
// else the flag serves its default (DEFAULT); the first rule whose condition
// matches serves its variant or its split (TARGETING_MATCH); otherwise the
// flag's serve applies: a fixed variant (STATIC when the flag has no rules
// nor prerequisites, DEFAULT otherwise) or a rollout or progressive rollout
// (SPLIT). A split with no bucketing value (no targeting key, or no
// BucketBy attribute) serves the default (DEFAULT). Unknown flags and calls
// of the wrong typed method return the caller's default with reason ERROR
// and code FLAG_NOT_FOUND or TYPE_MISMATCH; invalid definitions never get
// that far, they are refused at load, so PARSE_ERROR does not occur.
//
// # Bucketing
//
// Splits use internal/bucket, the scheme flagd uses for "fractional": the
// 32-bit MurmurHash3 of salt+key (salt defaults to the flag key, key to the
// targeting key) mapped by (h*total)>>32 onto cumulative weights in
// declaration order. A user gets the same variant here as from flagd-based
// SDKs for the same flag key, weights and targeting key. Raising a weight
// (keeping the total) or a percentage only moves users into the variant;
// a flag's percentage and a canary weight agree on who is in at p%.
// Properties are tested over 10^6 keys (each share within 0.1 percentage
// point; monotone ramps; stickiness across Stores).
//
// # Files
//
// Files are YAML, or JSON for names ending in ".json" (JSON is checked as
// JSON, so trailing commas are errors, and scanned without the YAML parser,
// which makes large JSON files about twice as fast to reload). Schema, every field optional
// unless marked:
//
//	segments:
//	  <name>:
//	    keys: [<targeting key>, ...]        # always in
//	    excluded: [<targeting key>, ...]    # never in (keys win)
//	    if: <condition>                     # everyone else it matches; no segment references
//	flags:
//	  <key>:
//	    type: bool|string|int|float|object  # default: inferred from the variants
//	    variants: {<name>: <value>, ...}    # required
//	    default: <variant>                  # required
//	    disabled: true|false                # kill switch
//	    offVariant: <variant>               # served while disabled; default: default
//	    salt: <string>                      # default: the flag key
//	    bucketBy: <attribute>               # default: the targeting key
//	    prerequisites: [{flag: <key>, variants: [<variant>, ...]}, ...]
//	    rules: [{name: <text>, if: <condition>, serve: <serve>}, ...]
//	    serve: <serve>                      # default: the default variant
//	    metadata: {<key>: <scalar>, ...}    # returned with every evaluation
//	    description: <text>
//	overrides:                              # run-time changes on top (see Documents)
//	  <flag key>:                           # a flag of any source
//	    disabled: true|false                # the kill switch
//	    percent: {variant: <v>, percent: <0-100>}  # as Store.SetPercent
//
//	<serve> is one of:
//	  <variant>                             # short for {variant: <variant>}
//	  {variant: <variant>}
//	  {rollout: [{variant: <variant>, weight: <uint32>}, ...]}
//	  {progressive: {variant: <v>, otherwise: <v>,             # otherwise: default
//	                 from: {at: <RFC 3339>, percent: <0-100>},   # linear ramp...
//	                 to:   {at: <RFC 3339>, percent: <0-100>}}}
//	  {progressive: {variant: <v>, steps: [{at: <time>, percent: <p>}, ...]}}  # ...or steps
//
//	<condition> is one of:
//	  {attr: <name>, op: <op>, value: <operand>}     # "targetingKey" names the targeting key
//	  {attr: <name>, op: in|not_in, values: [...]}
//	  {all: [<condition>, ...]}  {any: [<condition>, ...]}  {not: <condition>}
//	  {segment: <name>}
//	<op>: equals not_equals in not_in contains starts_with ends_with matches (RE2)
//	      lt lte gt gte (numbers) semver_eq semver_lt semver_lte semver_gt semver_gte
//	      before after (times; without attr, the current time) exists
//
// An absent attribute never matches, whatever the operator (use not to
// match absence). A string attribute or targeting key longer than
// [MaxAttributeLen] (4 KiB), or a list attribute of more than
// [MaxAttributeItems] elements, counts as absent; a matches expression may
// compile to at most [MaxRegexpProgram] instructions, and an operand longer
// than MaxAttributeLen is refused at load since nothing could match it. A
// progressive rollout serves nobody before its first point and keeps its
// last percentage after the last point. See testdata/flags.yaml for a
// complete example.
//
// A file may hold [MaxFileSize] bytes (1 MiB, about 2,800 flags; a larger
// one is refused before it is read: split it into several files) and
// 131,072 of the bytes that can start a YAML or JSON node (, : - [ { ? *),
// counted before parsing, so that a hostile file costs the parser at most
// about 60 MB; aliases are bounded too (see the refusals below).
//
// A file is accepted or refused whole. A refusal is a *LoadError naming the
// file, the flag or segment, the line and the field path (for example
// "flags.yaml:14: flag "new-checkout": rules[1].if.all[0].op: unknown
// operator "equal""); the previous configuration stays in force, and the
// error goes to slog (Error), the baton.flags.rejected counter,
// Options.OnReject and Subscribe callbacks (so the OpenFeature provider
// reports STALE). Prerequisite cycles, unknown variants, segments or flags,
// bad regular expressions, versions and times, duplicate keys, unknown
// fields and flags defined twice are all refusals. An empty file is refused
// too (it is what an in-place writer leaves between truncate and write);
// write "flags: {}" for no flags, and prefer writing a new file and renaming
// it over the old one.
//
// # Guarantees
//
//   - An evaluation never waits: it reads an immutable compiled snapshot
//     through an atomic pointer. An update compiles a new snapshot aside and
//     swaps it in whole, so an evaluation sees the old or the new
//     configuration, never a mix.
//   - Evaluation time has a ceiling whatever a client puts in the context:
//     every operator reads at most MaxAttributeLen bytes (or
//     MaxAttributeItems elements) of an attribute, and a regular
//     expression's program is bounded by MaxRegexpProgram, Go's regexp
//     matching in time linear in both. The slowest expression within the
//     bound, on the longest attribute read, is timed in BENCHMARKS.md; a
//     flag's cost is at most that per condition it evaluates.
//   - Evaluation does not allocate: conditions are compiled at load (regular
//     expressions, versions, times, numbers; short lists scanned, long ones
//     hashed), attributes are read in place from EvalContext.Attributes and
//     flag metadata is shared.
//   - Run-time changes (SetDisabled, SetPercent) survive reloads until
//     ClearOverride; one that no longer applies after a reload (its variant
//     was removed) is dropped with a warning rather than blocking the
//     reload, and one whose flag is removed is dropped with it. A source's
//     override of another source's flag that no longer applies is skipped
//     with a warning, never blocking either source.
//   - A DocumentSource serves the newest valid version it was given, or
//     its cache: a bad, conflicting or older document changes nothing,
//     and every applied version is in its cache before Apply returns nil.
//
// # Admin
//
// [NewAdminHandler] lists flags and changes them at run time, in the Store
// or, with [AdminOptions].Overrides, wherever a fleet keeps them. It has no
// authentication: serve it on loopback or a 0600 Unix socket. It refuses
// what a browser on the same machine could be made to send: changes
// without Content-Type: application/json (415) and requests whose Host is
// not loopback or listed in AdminOptions.AllowedHosts (403, DNS rebinding).
//
// # Documents and fleets
//
// Several hosts serve the same flags when they share one document: a whole
// configuration in the file schema, with a version, kept in an engine the
// fleet already trusts (etcd, PostgreSQL). Package flags knows no engine;
// any transport feeds a [DocumentSource].
//
//	// Where a change is made (an operator's command, any host's admin API):
//	if err := flags.ValidateDocument("fleet.yaml", data); err != nil { ... } // before it is stored
//	// store data with compare-and-swap; the engine gives it a version
//
//	// On every host:
//	src, err := flags.NewDocumentSource(store, flags.DocumentOptions{CacheFile: "/var/lib/svc/flags.cache"})
//	// the transport, for each version it receives:
//	err = src.Apply(flags.Document{Version: rev, Name: "fleet.yaml", Data: data})
//	// and when it loses its engine:
//	src.MarkStale(err)
//
// [ValidateDocument] checks a document exactly as every host will, with the
// line-accurate errors of a file, so that a bad document is refused before
// it reaches any host. A document is self-contained (its rules refer only
// to its own segments and flags); a host whose own files define one of
// its flags refuses it and reports the source stale. [DocumentSource.Apply] takes only a
// version above the one in force; the version in force again is the
// transport confirming it. Every applied version is written atomically to
// the cache file, from which [NewDocumentSource] starts when the transport
// has nothing yet. The source is stale ([EventStale], [Store.StaleSources];
// the OpenFeature provider reports STALE) from its start until its
// transport delivers, and after [DocumentSource.MarkStale] until the next
// Apply.
//
// Run-time changes on a fleet are changes applied on top, not edits of
// the definitions: a document's overrides section holds the fleet's kill
// switches and percentages ([Override]), meaning exactly what
// [Store.SetDisabled] and [Store.SetPercent] mean, for flags of any source (the document's own, or
// a host's files). A change made on one host becomes a new version of the
// document: read it, [EditOverride] (which rewrites only the overrides
// section, keeping a YAML document's comments), store it with
// compare-and-swap on the version read; every host applies it. The admin
// handler writes there when AdminOptions.Overrides is a writer doing so,
// and a rollout's ramp of a flag is a sequence of such changes (percent
// 5, 25, 100, or disabled to roll back). A host's own run-time changes
// (Store.SetDisabled, Store.SetPercent) still apply and win over a
// document's, field by field, so a local kill switch stays possible when
// the engine is down; clearing them ([Store.ClearOverride]) leaves the
// document's. Only one source may override a given flag.
//
// # Usage and flag debt
//
// Each flag counts its evaluations by variant and reason in per-core
// sharded atomic counters and stamps "last evaluated" from the coarse
// clock: that is the whole hot-path cost of usage tracking and of the
// OpenTelemetry metric baton.flags.evaluations{flag,variant,reason}, which
// is an observable counter read from the same counters at collection.
// Store.Flags lists state and usage; Store.Stale lists flags not evaluated
// for a period and flags that serve one variant to everyone (flag debt).
// Counts start at zero with each process.
//
// # Metrics
//
//	baton.flags.evaluations  observable counter  {flag, variant, reason}; unknown flags: {reason=ERROR, error=FLAG_NOT_FOUND}
//	baton.flags.updates      counter             accepted updates
//	baton.flags.rejected     counter             refused updates
//
// # Performance
//
// Evaluations take no lock and do not allocate; their cost, that of
// reloads and documents, and the evaluation ceiling are measured in the
// repository's BENCHMARKS.md, with the command that reproduces each
// figure.
//
// # Known limits
//
//   - Usage counts are per process and reset on restart; "last evaluated"
//     has the coarse clock's resolution.
//   - Scheduled steps and time conditions take effect up to
//     DefaultClockResolution late (exact with Options.Now).
//   - Bucketing values are strings or integers (hashed as their decimal
//     form); other types named by BucketBy count as missing.
//   - A split needs a bucketing value: anonymous subjects get the default.
//   - Object values are shared between evaluations: callers must not
//     modify them.
//   - Subscribers run synchronously on the updating goroutine, one event
//     at a time in version order, and must not update the Store; a slow
//     subscriber delays the return of concurrent updates (never an
//     evaluation).
//   - A document is at most MaxFileSize (1 MiB, about 2,800 flags): one
//     document per fleet. Its versions must only grow, as etcd's revisions
//     and a PostgreSQL sequence do; an engine restored with lower
//     revisions is refused until it passes the cached version (remove the
//     cache file to start over).
//   - A document edited through EditOverride keeps a YAML document's
//     comments but re-indents it with two spaces; a JSON document is
//     re-indented with its top-level keys sorted. Line numbers in later
//     errors refer to the edited document.
//   - A host whose files define a flag the document also defines refuses
//     every version of the document until one side drops it.
package flags
