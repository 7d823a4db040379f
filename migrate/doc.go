// Package migrate makes schema changes the expand-contract way on
// PostgreSQL, MySQL/MariaDB and SQLite through database/sql, so that the old
// and the new version of an application can run at once without a single
// failed query. It imports no driver: use pgx's stdlib driver
// (github.com/jackc/pgx/v5/stdlib), github.com/go-sql-driver/mysql or
// modernc.org/sqlite (driver name "sqlite").
//
// # Lifecycle
//
// A Migration is a name, the application Version that reads the new schema,
// and Operations (Go values, or a YAML/JSON file read by LoadFile). New
// validates it for the dialect without touching the database; Check
// resolves it against the live schema (tables, keys, what renamed columns
// must carry) and refuses, naming the cause, what Start could not do. A
// Runner moves the migration through four phases, each a method a rollout
// plan can call:
//
//	Start        Check, then expand: CreateTable, AddColumn, CreateIndex
//	             (CONCURRENTLY / ALGORITHM=INPLACE, LOCK=NONE), new columns
//	             of a Transform (RenameColumn and ChangeType are Transforms)
//	             and their dual-write triggers, NOT VALID constraints.
//	             Deploy the new version after it.
//	Backfill     fill the new columns of existing rows in keyset batches;
//	             VALIDATE constraints; build the indexes new columns carry.
//	SwitchReads  record phase read_new: Phase.ReadNew turns true and the new
//	             version reads the new columns (rollout ties it to a flag).
//	Complete     contract: drop triggers, old columns (DropColumn, DropTable,
//	             Transform.Drop); the new columns get NOT NULL, DEFAULT and
//	             the old index names. Refused while an instance of an older
//	             version heartbeats (Register); first waits, at most
//	             Options.CatchUpTimeout, until every live instance acting on
//	             the migration has observed read_new. ForceComplete skips both.
//	Rollback     undo the expand, any time before Complete, giving the old
//	             columns back their defaults. Refused while an instance of
//	             Migration.Version or newer heartbeats (it uses the new
//	             columns), unless ForceRollback.
//
// What each phase allows each version to write (old: the version before
// Migration.Version; new: Migration.Version and later):
//
//	phase                 old version writes        new version writes
//	none, rolled_back     old columns               (not deployed)
//	expanding, expanded,  old columns               new columns, or both
//	backfilling,                                    (reads the old ones)
//	backfilled
//	read_new              old columns, until it     new columns, or both;
//	                      is stopped: Complete      from the moment it acts
//	                      refuses while it lives    on read_new, new only
//	completing, complete  (gone)                    new columns only
//
// Applications read the phase with Instance.Phase, which also reports it as
// the phase the instance acts on, or with CurrentPhase (one indexed SELECT)
// plus Instance.Observe when they cache it: Complete waits for the
// instances that declared the migration (RegistryOptions.Migrations) or
// reported a phase of it, so a cache that lags only delays Complete. The
// state lives in tables named by Options.StateTablePrefix (default
// "baton_migrate_"; StateTables lists them). Every call is idempotent and
// resumable: a crashed Start or Backfill is called again.
//
// A runner lock keeps two runners apart: pg_try_advisory_lock and GET_LOCK
// on a pinned connection (released by the server if the runner dies)
// pinged every Options.LockCheck, and on SQLite a lease row written under
// SQLite's writer lock and renewed every LeaseTTL/3 (holding the writer
// lock itself for a backfill would stop every application write; a killed
// runner's lease expires after LeaseTTL). A runner whose lock session ends
// or whose lease is taken stops the step at once with an error wrapping
// ErrLocked ("lease lost"), never with context.Canceled; every phase and
// checkpoint write confirms the lock in the same transaction, so a runner
// that lost it records nothing. The step resumes when called again.
// Heartbeats, liveness and leases use the database's clock.
//
// # Dual write: triggers (default) or the application
//
// While both versions run, old code writes only the old columns and new
// code writes the new ones (and may write both). With SyncTriggers (the
// default) the database keeps them equal, so the old version needs no
// change, which a rolling deploy requires. The rule knows what a statement
// wrote: Start moves the old columns' defaults into the triggers (and on
// SQLite their NOT NULL, which the trigger then enforces with SQLite's own
// message), and new columns have no default until Complete, so a synced
// column that is NULL in an INSERT is one the statement did not write (or
// wrote NULL: the two are the same to the rule). An UPDATE writes a column
// when it changes its value (a no-op assignment is no write):
//
//	INSERT: new side unwritten -> fill the old columns' defaults where NULL,
//	        then derive new from old (an old writer); else old side
//	        unwritten -> derive old from new (a new writer); else keep both
//	        as written (a writer of both generations).
//	UPDATE: only old written -> derive new; only new written -> derive old;
//	        neither written and new all NULL -> derive new (rows not yet
//	        backfilled); both written -> keep both as written.
//
// Each Transform has its own triggers over its own columns, so a rename and
// a type change on one table are synced independently. PostgreSQL uses one
// BEFORE INSERT OR UPDATE PL/pgSQL trigger assigning NEW; MySQL/MariaDB
// BEFORE INSERT and BEFORE UPDATE triggers with SET NEW.x; SQLite cannot
// assign NEW, so one AFTER INSERT and one AFTER UPDATE trigger UPDATE the
// row by key, guarded by a marker row in <prefix>guard so that one
// trigger's write does not fire the other. Up/Down expressions name
// columns bare; the runner qualifies them. Up may read any column but the
// new ones, Down any but the old ones; neither may read a generated column
// (a BEFORE trigger runs before it is computed), and generated columns
// cannot be synced.
//
// Start installs the triggers, moves the defaults and adds the NOT VALID
// checks as one unit, and Complete drops the triggers and the old columns
// and gives the new columns their properties as one unit, as does
// Rollback in reverse: a transaction on PostgreSQL and SQLite, a table
// write lock held only for instant statements on MySQL (writers wait,
// none fails). MySQL's NOT NULL on the new column, which rebuilds the
// table, runs online after the unit.
//
// # What a new column carries
//
// RenameColumn and ChangeType give the new column what the old one
// promised: NOT NULL (a NOT VALID check on Start, validated after the
// backfill, SET NOT NULL at Complete; on MySQL and SQLite a check for NULLs
// instead), DEFAULT and comment (set at Complete), its UNIQUE constraints
// and plain indexes (built online after the backfill under temporary
// names, renamed to the old names at Complete; SQLite cannot rename an
// index, so its copy keeps the temporary name), and its own foreign keys
// and, on PostgreSQL, CHECK constraints (added NOT VALID on Start, or on
// MySQL with foreign_key_checks off, validated or checked for orphans
// after the backfill, renamed to the old names at Complete where the
// dialect can rename them). Foreign keys of other tables that reference
// the column move to the new column at Complete, in the contract's unit on
// PostgreSQL (added NOT VALID, validated right after), dropped before the
// unit and added back after it with foreign_key_checks off on MySQL (the
// referencing rows are unchanged and the values equal). A Transform's new
// columns carry the NotNull and Default their Column declares. What cannot
// be carried is refused by Check, before any DDL, naming it: CHECK
// constraints on MySQL (no NOT VALID there), partial and expression
// indexes, a primary-key column, and on SQLite any constraint or comment.
// SQLite cannot drop a column that has its own UNIQUE constraint, so
// Complete drops it by rebuilding the table in its transaction (new table,
// rows copied with their rowids, indexes and triggers created again), while
// writers wait; Check refuses that for a UNIQUE constraint over several
// columns or a table that another table references.
//
// SyncApplication installs no trigger; the application writes both sides
// as Phase.WriteOld and Phase.WriteNew say. Use it only where triggers are
// impossible: every running version must already write both sides, so
// Backfill refuses while an older version heartbeats, and old columns must
// be nullable or defaulted because the application stops writing them at
// SwitchReads.
//
// # Backfill
//
// A pass walks a table's primary key, or a UNIQUE key of NOT NULL columns
// (Transform.Key picks one), of any type and any number of columns:
// keyset batches compare row values ((a, b) > (x, y); MySQL gets the
// equivalent OR form, which its range optimizer uses). One pass serves
// every Transform on the table. It ends at the highest key the table had
// when the pass began: rows inserted later are written through the
// triggers, so the backfill finishes under any sustained insert rate. Each
// batch is one transaction that also advances the checkpoint (the last key
// as typed JSON); a killed runner resumes after the last committed batch
// (the batch in flight is rolled back and redone). The batch size adapts
// toward Options.BatchTarget (50 ms) by at most 4x per batch; Throttle
// pauses between batches. A batch that meets a lock gives up after
// LockTimeout and is retried at half size. Progress (OnProgress) carries
// rows, fraction, rate and ETA; OpenTelemetry metrics
// baton.migrate.backfill.rows, baton.migrate.backfill.batch.duration, the
// gauges baton.migrate.backfill.progress (0..1) and
// baton.migrate.backfill.eta (seconds), all with migration and table
// attributes, and baton.migrate.ddl.retries; a span per phase and DDL
// statement. The gauges are set after each batch and keep their last value
// (1 and 0 once done).
// On PostgreSQL a batch is one set-based UPDATE of the new columns whose
// session sets baton.backfill=on, which the trigger's WHEN clause skips; on
// MySQL (READ COMMITTED, so no gap locks block inserts at the end of the
// table) and SQLite (BEGIN IMMEDIATE) it is a no-op UPDATE that lets the
// trigger derive the new columns.
//
// # Lock safety
//
// Every DDL statement runs on a pinned connection (db.Conn) whose lock
// timeout is Options.LockTimeout (PostgreSQL lock_timeout; MySQL
// lock_wait_timeout and innodb_lock_wait_timeout, whole seconds; SQLite
// busy_timeout), reset before the connection returns to the pool. A lock
// timeout, deadlock or busy error is retried up to DDLAttempts times after
// an exponential pause with jitter (RetryBackoff..MaxRetryBackoff), and a
// cancelled context stops it with ctx.Err(). So a DDL statement stuck
// behind a long transaction makes application queries queue behind it for
// at most LockTimeout per attempt, with gaps between attempts where they
// run (tested: TestDDLBlockedByLongTransactionRetries).
//
// # Lint
//
// Lint checks a Migration and LintSQL an SQL script for unsafe changes per
// dialect; Rules lists the rules, each with a name, an explanation and the
// safe alternative: drop-column, drop-table, rename-column, rename-table,
// change-column-type, add-column-not-null-without-default, set-not-null,
// check-without-not-valid, foreign-key-without-not-valid,
// index-without-concurrently, drop-index-without-concurrently,
// index-not-online, volatile-default, unique-constraint-without-index,
// backfill-in-ddl-transaction, no-lock-timeout. It tokenizes (strings,
// quoted identifiers, comments, dollar quotes) and recognises the
// statements listed on LintSQL; it is not a parser, and statements it does
// not recognise are not examined. The corpus is testdata/lint.
//
// Each rule has a Severity: error (breaks a running version, or blocks
// reads or writes for a scan, rewrite or index build) or warning
// (index-not-online, backfill-in-ddl-transaction, no-lock-timeout). A
// Runner lints at run time too: Start the operations it runs (RawSQL,
// AddColumn defaults), Complete the Contract RawSQL, as Options.LintMode
// says: LintWarn (default) logs each finding at WARN and runs; LintRefuse
// refuses error findings with a *LintError (ErrUnsafe) before anything runs,
// leaving the phase unchanged; LintOff does not lint. RawSQL.Down, which
// Rollback runs to undo the expand, is not linted.
//
// # Known limits
//
//   - Tables are unqualified names in the connection's current schema or
//     database.
//   - ChangeType adds a column under a new name: without a view layer the
//     final name cannot be the old one without a second rename migration.
//   - SetNotNull and AddForeignKey are not available on SQLite (they would
//     rebuild the table).
//   - Defaults and NOT NULL of SQLite columns are changed by rewriting the
//     table's definition in sqlite_master (writable_schema, SQLite's
//     documented procedure for these two changes); a database opened in
//     defensive mode refuses it.
//   - An INSERT that writes NULL explicitly into a synced old column that
//     has a default gets the default during the migration (the rule cannot
//     tell it from a statement that left the column out).
//   - MySQL lock timeouts are whole seconds (1 s minimum); MariaDB rejects
//     fractions. MySQL 8's COLUMN_DEFAULT is read as MySQL documents it but
//     is tested on MariaDB only.
//   - A batch holds the row locks of its rows until it commits, so a
//     writer updating one of them waits up to one batch (about
//     BatchTarget, more on a loaded server).
//   - SQLite has one writer: a long application write transaction blocks the
//     runner's own state writes too, and a DDL statement waits up to
//     busy_timeout per attempt. Readers never wait in WAL mode.
//   - Register creates the state tables if needed, so the application's
//     database user needs CREATE on first use. Instances that neither
//     declare a migration nor observe its phase are not waited for by
//     Complete.
//   - MySQL/MariaDB with binary logging: creating triggers needs SUPER or
//     log_bin_trust_function_creators=1, and the READ COMMITTED backfill
//     needs binlog_format ROW or MIXED. Without trigger rights use
//     SyncApplication.
//   - Operations are identified by their index: do not reorder the
//     operations of a migration that has started (trigger names,
//     checkpoints and saved schema use the index).
//   - New-version code that writes only the new columns relies on the
//     database applying NOT NULL after BEFORE triggers (PostgreSQL, MySQL
//     5.7+, MariaDB 10.5+); on SQLite the triggers enforce it.
//
// # Figures
//
// Measured rates, batch latencies and write amplification, each with the
// command that reproduces it, are in the migrate section of BENCHMARKS.md
// at the root of the module.
package migrate
