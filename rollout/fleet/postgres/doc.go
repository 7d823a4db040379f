// Package postgres is the fleet engine on the service's own PostgreSQL,
// through database/sql with pgx's driver (github.com/jackc/pgx/v5/stdlib),
// for services that already have PostgreSQL and want nothing new. It is the
// only package of baton's library that imports pgx.
//
//	db, err := sql.Open("pgx", dsn)
//	e, err := postgres.New(ctx, db, postgres.Options{Schema: "baton_fleet"})
//
// # How it maps the fleet onto PostgreSQL
//
// The engine keeps five tables in its schema: meta (the engine revision),
// kv (documents), events (the change history), leases and elections.
//
//   - Every write (Commit, a lease's expiry or revocation, a campaign, a
//     resignation) is one transaction that first raises meta's revision.
//     That row lock is held until the transaction ends, so writes commit
//     one at a time in revision order; this is what makes a watch that
//     resumes from a revision miss nothing. It also bounds the write rate
//     (one round trip sequence at a time), which fleet coordination —
//     a few writes a second — is far from.
//   - Compare-and-swap checks each key's revision inside that transaction.
//   - Leases are rows whose expiry is on the database's clock
//     (clock_timestamp()), so hosts' clocks never matter. The holder renews
//     every third of the TTL and gives up a TTL after the start of its last
//     successful renewal, which is before the database's expiry. Every
//     engine reaps expired leases every ReapInterval, deleting their
//     documents.
//   - Leadership is a row of elections naming a lease, with a term raised
//     at every change of leader. A fenced write checks, inside its
//     serialized transaction, that the row still names its term and lease
//     and that the lease has not expired by the database's clock: a
//     deposed leader's write is refused, never applied.
//   - Watches read the events table after their last revision, woken by
//     LISTEN/NOTIFY on one pinned connection per engine and polling every
//     PollInterval as the fallback (and as the only way with another
//     driver than pgx's).
//
// # Known limits
//
//   - The change history is kept for EventRetention; a watch that resumes
//     from before it fails with fleet.ErrCompacted and the fleet lists
//     again.
//   - A document of an expired lease disappears up to ReapInterval after
//     the expiry (no engine is left to reap when every instance is gone;
//     the next to start does).
//   - All writes go through one row: a fleet engine, not a general store.
//     A client stopped or cut off inside a write holds that row until the
//     server ends its session, TxIdleTimeout later (each transaction sets
//     idle_in_transaction_session_timeout); meanwhile other writes wait.
//     Keep TxIdleTimeout well under the lease TTL so a takeover is not
//     held up by it.
//   - A NOTIFY lost while the listener reconnects is covered by polling:
//     watchers then see changes up to PollInterval late.
package postgres
