// Package fleetflags gives a fleet one flag configuration: the engine
// (etcd or PostgreSQL, through package fleet) is a flags source of whole,
// versioned documents that every host applies, beside its own file
// sources. Package flags knows nothing of the fleet: a host applies each
// version through a flags.DocumentSource.
//
// # Lifecycle
//
//	store, _ := flags.New(flags.Options{})
//	files, _ := flags.NewFileSource(store, flags.FileOptions{Paths: []string{"local.yaml"}})
//	src, _ := fleetflags.NewSource(fleetflags.Options{Store: store, CacheFile: "/var/lib/svc/flags.cache"})
//	// ... serve: the cached version is in force, reported STALE ...
//	m, _ := fleet.Join(ctx, engine, fleet.Options{...})
//	_ = src.Follow(m)
//	admin := flags.NewAdminHandler(store, flags.AdminOptions{Overrides: src.Writer()})
//	defer src.Close()
//
// A rollout's ramp-flag steps take Ramps{Writer: fleetflags.LeadWriter(lead, "")}
// as their rollout.FlagRamper.
//
// # One document
//
// The document lives at Key(layout, name) (ns/shared/flags/<name>); its
// name, "flags.yaml" by default, picks its syntax as a file's does, and
// its version on every host is the engine revision it was stored at,
// which only grows. Each host reports the version it has in force
// (fleet.Member.ReportApplied, at ns/applied/<member>/flags/<name>, under
// its lease, the reason too when it refused a newer one), which the
// console's fleet page shows per host (fleet.Registry.Hosts). It is in
// the file schema (flags, segments, and an overrides section for run-time
// changes) and self-contained: its rules may refer only to its own
// segments and flags.
//
// # Changes, validated first
//
// A Writer validates every new version with flags.ValidateDocument before
// it stores it, so a bad document is refused with the error a bad file
// gets (a *flags.LoadError with the document's name, the flag, the line
// and the field) and never reaches a host. A change of one flag (the
// admin API's disable, enable, percent and clear; a ramp's percentage) is
// a read-edit-write of the whole document (flags.EditOverride, which keeps
// a YAML document's comments) stored with compare-and-swap on the
// revision read, so that two hosts' concurrent changes both land, one
// after the other. Source.Writer waits until its own host has applied the
// change, so the admin answer shows it; LeadWriter's writes are fenced by
// the driver's leadership.
//
// # Engine trouble and the cache
//
// With Options.CacheFile, every applied version is written to local disk
// atomically (temporary file, fsync, rename, directory fsync). A host
// that starts while the engine is unreachable serves its cached version
// at once, and the Store (so the OpenFeature provider) reports STALE until
// the engine delivers the current version, which it then applies or
// confirms: the provider is READY again. A host that loses the engine
// keeps the version in force and reports STALE meanwhile.
//
// # Guarantees
//
//   - A document that fails validation is never stored.
//   - Every host applies a version whole or not at all, in revision
//     order; a host may skip versions superseded before it saw them.
//   - A host never goes back to an older version than the one in force
//     (a restored backup of the engine holding an older one is refused
//     and logged; the host keeps the newer one).
//   - File sources and code-defined flags keep working beside the
//     document, whatever the engine does.
//
// # Known limits
//
//   - What validation cannot see is a host's other sources: a flag or
//     segment that a host also defines in a file makes that host refuse
//     the document (reported STALE there, with the reason); the others
//     apply it.
//   - Until a document is stored, hosts serve none of the fleet's flags
//     (an empty document is in force); admin changes need a document to
//     edit.
//   - Hosts apply a change at slightly different moments (the engine's
//     watch delay, see BENCHMARKS.md): for that long two hosts may
//     evaluate a flag differently.
//   - Without CacheFile, a host that starts while the engine is down
//     serves none of the fleet's flags until it reaches the engine.
package fleetflags
