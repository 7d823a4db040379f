package dbopen

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"

	_ "github.com/go-sql-driver/mysql" // registers "mysql"
	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite"
)

// Driver names Open returns; migrate.ParseDialect accepts each of them.
const (
	PostgreSQL = "pgx"
	MySQL      = "mysql"
	SQLite     = "sqlite"
)

// SQLitePragmas is appended to an SQLite file's DSN.
const SQLitePragmas = "_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"

// Resolve returns the driver name for dsn and the DSN in the form that
// driver wants (mysql:// stripped, an SQLite path made absolute, with
// SQLitePragmas).
func Resolve(dsn string) (driver, driverDSN string, err error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://"):
		return PostgreSQL, dsn, nil
	case strings.Contains(dsn, "@tcp(") || strings.HasPrefix(dsn, "mysql://"):
		return MySQL, strings.TrimPrefix(dsn, "mysql://"), nil
	case dsn == "":
		return "", "", fmt.Errorf("dbopen: empty DSN: want postgres://..., user@tcp(host:port)/db or an SQLite file path")
	}
	abs, err := filepath.Abs(dsn)
	if err != nil {
		return "", "", fmt.Errorf("dbopen: SQLite path %q: %w", dsn, err)
	}
	return SQLite, "file:" + abs + "?" + SQLitePragmas, nil
}

// Open resolves dsn, opens it with at most maxOpen connections (zero means
// no limit) and pings it, so that a wrong address or credentials fail here
// and not at the first query. It returns the driver name with the handle.
func Open(ctx context.Context, dsn string, maxOpen int) (string, *sql.DB, error) {
	driver, ddsn, err := Resolve(dsn)
	if err != nil {
		return "", nil, err
	}
	db, err := sql.Open(driver, ddsn)
	if err != nil {
		return "", nil, fmt.Errorf("dbopen: %s: %w", driver, err)
	}
	db.SetMaxOpenConns(maxOpen)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("dbopen: connect (%s): %w", driver, err)
	}
	return driver, db, nil
}
