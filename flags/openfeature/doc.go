// Package openfeature is an OpenFeature provider for package flags: it lets
// code written against the OpenFeature Go SDK (github.com/open-feature/go-sdk)
// evaluate flags held by a flags.Store, in process, with no flag server.
//
// # Lifecycle
//
//	store, _ := flags.New(flags.Options{})
//	src, _ := flags.NewFileSource(store, flags.FileOptions{Paths: []string{"flags.yaml"}})
//	api := isolated.NewAPI() // or the SDK's global API
//	_ = api.SetProviderAndWait(ctx, openfeature.New(store, openfeature.Options{}))
//	client := api.NewClient()
//	on := client.Boolean(ctx, "new-checkout", false, of.NewEvaluationContext("user-42", nil))
//
// The provider does not own the Store or the FileSource: close them after
// the SDK has shut the provider down.
//
// # Guarantees
//
//   - All five types, with the variant, the reason (STATIC, TARGETING_MATCH,
//     SPLIT, DISABLED, DEFAULT, ERROR), the error code (FLAG_NOT_FOUND,
//     TYPE_MISMATCH) and the flag's metadata.
//   - Events: PROVIDER_READY when the SDK initialises the provider;
//     PROVIDER_CONFIGURATION_CHANGED with the changed flag keys after every
//     accepted update (file reload, Set, admin change, document);
//     PROVIDER_STALE when an update is rejected, since the last good
//     configuration is still served, and when a source says its
//     configuration may be out of date (a flags.DocumentSource serving its
//     cache, or cut off from its transport); PROVIDER_READY again once
//     every such source is current again (accepted, confirmed or removed):
//     an admin change does not hide a file that is still bad.
//   - A store that is already stale when the SDK initialises the provider
//     is reported STALE after the SDK's READY, at the first evaluation (the
//     SDK records READY only once Init has returned, so a STALE sent from
//     Init could be overtaken).
//   - The evaluation methods do not allocate on success: the flattened
//     context is read in place and flag metadata is precomputed. (The SDK
//     client around them allocates; see the benchmarks.)
//
// Most of an SDK evaluation is the SDK's own work (context merging, hooks,
// detail copies), many times the provider's: call flags.Store directly
// where that matters. BENCHMARKS.md in the repository measures both.
//
// # Known limits
//
//   - The SDK does not pass an event's ErrorCode on to handlers; STALE
//     events also carry it as EventMetadata["errorCode"].
//   - The SDK runs each event handler on its own goroutine, so handlers may
//     see READY and CONFIGURATION_CHANGED of one recovery in either order.
//   - A store stale at Init is READY in the SDK until the first
//     evaluation (Store.StaleSources says why meanwhile).
//   - Events never hold up the Store: when the SDK leaves the event channel
//     full (Options.EventBuffer), CONFIGURATION_CHANGED events are dropped
//     and counted by Provider.Dropped, and the latest READY or STALE waits
//     for the next event to be sent first; with no further event it is not
//     sent.
package openfeature
