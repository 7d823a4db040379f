// Package dbopen opens a database/sql handle from the DSN a command-line user
// types, picking the driver from the DSN's form, for the programs that accept
// any of the databases migrate supports (examples/migrate,
// internal/cmd/backfillbench). It imports the three drivers, which is why it
// lives apart from migrate: migrate itself stays driver-free.
//
// The forms are:
//
//   - postgres://... or postgresql://...: PostgreSQL through pgx's
//     database/sql driver ("pgx").
//   - user@tcp(host:port)/db, or the same behind mysql://: MySQL or MariaDB
//     through go-sql-driver/mysql ("mysql").
//   - anything else: the path of an SQLite file (modernc.org/sqlite,
//     "sqlite"), opened with busy_timeout(20000), journal_mode(WAL) and
//     synchronous(NORMAL): SQLite has one writer, and concurrent writers
//     wait their turn for up to 20 s instead of failing with SQLITE_BUSY.
package dbopen
