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
// and Operations (Go values, or a YAML/JSON file read by LoadFile). A Runner
// (New) moves it through four phases, each a method a rollout plan can call:
//
//	Start        expand: CreateTable, AddColumn, CreateIndex (CONCURRENTLY /
//	             ALGORITHM=INPLACE, LOCK=NONE), new columns of a Transform
//	             (RenameColumn and ChangeType are Transforms) and their
//	             dual-write triggers, NOT VALID constraints.
//	             Deploy the new version after it.
//	Backfill     fill the new columns of existing rows in keyset batches;
//	             VALIDATE constraints.
//	SwitchReads  record phase read_new: Phase.ReadNew turns true and the new
//	             version reads the new columns (rollout ties it to a flag).
//	Complete     contract: drop triggers, old columns (DropColumn, DropTable,
//	             Transform.Drop), SET NOT NULL. Refused while an instance of
//	             an older version heartbeats (Register), unless ForceComplete.
//	Rollback     undo the expand, any time before Complete. Refused while
//	             an instance of Migration.Version or newer heartbeats
//	             (it uses the new columns), unless ForceRollback.
//
// Applications read the phase with CurrentPhase (one indexed SELECT; cache
// it for a few seconds) or Runner.Phase. The phase, the backfill checkpoints
// and the instance registry live in three state tables named by
// Options.StateTablePrefix (default "baton_migrate_"). Every call is
// idempotent and resumable: a crashed Start or Backfill is called again.
// A runner lock keeps two runners apart: pg_try_advisory_lock and GET_LOCK on
// a pinned connection (released by the server if the runner dies), and on
// SQLite a lease row written under SQLite's writer lock and renewed every
// LeaseTTL/3 (holding the writer lock itself for a backfill would stop every
// application write; a killed runner's lease expires after LeaseTTL). A
// runner that finds its lease taken stops the step at once with an error
// wrapping ErrLocked ("lease lost"), never with context.Canceled, and the
// step resumes when called again.
//
// # Dual write: triggers (default) or the application
//
// While both versions run, old code writes only the old columns and new
// code writes the new ones (and may write both). With SyncTriggers (the
// default) the database keeps them equal, so the old version needs no
// change, which a rolling deploy requires. The conflict rule:
//
//	INSERT: new columns all NULL -> derive new from old (an old writer);
//	        else old columns all NULL -> derive old from new; else keep both.
//	UPDATE: only old columns changed -> derive new; only new changed ->
//	        derive old; neither changed and new all NULL -> derive new (rows
//	        not yet backfilled); both changed -> keep both as written.
//
// "Changed" compares values. PostgreSQL uses one BEFORE INSERT OR UPDATE
// PL/pgSQL trigger assigning NEW; MySQL/MariaDB BEFORE INSERT and BEFORE
// UPDATE triggers with SET NEW.x; SQLite cannot assign NEW, so AFTER
// triggers UPDATE the row by key, guarded by a marker row in
// <prefix>guard so that one trigger's write does not fire the other.
// Up/Down expressions name columns bare; the runner qualifies them.
// Up may read any column but the new ones, Down any but the old ones.
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
// Batches walk the integer primary key (keyset, one column; or
// Transform.Key) up to the highest key seen when the backfill first
// started: rows inserted later are written through the triggers, so the
// backfill finishes under any sustained insert rate. Each batch is one
// transaction that also advances the checkpoint; a killed runner resumes
// after the last committed batch (the batch in flight is rolled back and
// redone). The batch size adapts toward Options.BatchTarget (50 ms) by at
// most 4x per batch; Throttle pauses between batches. A batch that meets a
// lock gives up after LockTimeout and is retried at half size. Progress
// (OnProgress) carries rows, key fraction, rate and ETA; OpenTelemetry
// metrics baton.migrate.backfill.rows, baton.migrate.backfill.batch.duration,
// the gauges baton.migrate.backfill.progress (0..1) and
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
//   - Keyset batches need a single-column integer key.
//   - Tables are unqualified names in the connection's current schema or
//     database.
//   - ChangeType adds a column under a new name: without a view layer the
//     final name cannot be the old one without a second rename migration.
//   - SetNotNull and AddForeignKey are not available on SQLite (they would
//     rebuild the table). On MySQL SetNotNull restates only the column type
//     in MODIFY, dropping a column default or comment.
//   - MySQL lock timeouts are whole seconds (1 s minimum); MariaDB rejects
//     fractions.
//   - A batch holds the row locks of its rows until it commits, so a
//     writer updating one of them waits up to one batch (about
//     BatchTarget, more on a loaded server).
//   - SQLite has one writer: a long application write transaction blocks the
//     runner's own state writes too, and a DDL statement waits up to
//     busy_timeout per attempt. Readers never wait in WAL mode.
//   - Instance heartbeats use the application host's clock; clocks must
//     agree within InstanceTTL. Register creates the state tables if
//     needed, so the application's database user needs CREATE on first use.
//   - MySQL/MariaDB with binary logging: creating triggers needs SUPER or
//     log_bin_trust_function_creators=1, and the READ COMMITTED backfill
//     needs binlog_format ROW or MIXED. Without trigger rights use
//     SyncApplication.
//   - Operations are identified by their index: do not reorder the
//     operations of a migration that has started (trigger names and
//     checkpoints use the index).
//   - New-version code that writes only the new columns relies on the
//     database applying NOT NULL after BEFORE triggers (PostgreSQL, MySQL
//     5.7+, MariaDB 10.5+); on SQLite the old columns must be nullable for it.
//
// # Figures
//
// Measured rates, batch latencies and write amplification, each with the
// command that reproduces it, are in the migrate section of BENCHMARKS.md
// at the root of the module.
package migrate
