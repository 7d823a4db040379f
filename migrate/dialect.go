package migrate

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Dialect selects the SQL spoken to the database. The zero value,
// DialectAuto, means: detect it from the database/sql driver.
type Dialect int

const (
	// DialectAuto detects the dialect from the driver's type: pgx's stdlib
	// driver or lib/pq → PostgreSQL, go-sql-driver/mysql → MySQL,
	// modernc.org/sqlite or mattn/go-sqlite3 → SQLite.
	DialectAuto Dialect = iota
	// PostgreSQL 14 or later (CREATE OR REPLACE TRIGGER).
	PostgreSQL
	// MySQL 8.0.29 or later, or MariaDB 10.5 or later (CREATE TRIGGER IF
	// NOT EXISTS, ALGORITHM=INSTANT).
	MySQL
	// SQLite 3.35 or later.
	SQLite
)

// String returns "postgres", "mysql" or "sqlite", the names ParseDialect
// accepts; DialectAuto (the zero value) is "auto".
func (d Dialect) String() string {
	switch d {
	case PostgreSQL:
		return "postgres"
	case MySQL:
		return "mysql"
	case SQLite:
		return "sqlite"
	}
	return "auto"
}

// ParseDialect maps "postgres"/"postgresql", "mysql"/"mariadb" and "sqlite"
// to a Dialect.
func ParseDialect(s string) (Dialect, error) {
	switch strings.ToLower(s) {
	case "postgres", "postgresql", "pg", "pgx":
		return PostgreSQL, nil
	case "mysql", "mariadb":
		return MySQL, nil
	case "sqlite", "sqlite3":
		return SQLite, nil
	}
	return DialectAuto, fmt.Errorf("%w: unknown dialect %q (want postgres, mysql or sqlite)", ErrInvalid, s)
}

// DetectDialect guesses the dialect from db's driver type, without
// importing any driver.
func DetectDialect(db *sql.DB) (Dialect, error) {
	t := reflect.TypeOf(db.Driver()).String()
	switch {
	case strings.Contains(t, "stdlib.") || strings.Contains(t, "pq."):
		return PostgreSQL, nil
	case strings.Contains(t, "mysql."):
		return MySQL, nil
	case strings.Contains(t, "sqlite"):
		return SQLite, nil
	}
	return DialectAuto, fmt.Errorf("%w: cannot tell the dialect of driver %s; set Options.Dialect", ErrInvalid, t)
}

// quote quotes an identifier for d. Identifiers never reach SQL unquoted.
func (d Dialect) quote(s string) string {
	if d == MySQL {
		return "`" + strings.ReplaceAll(s, "`", "``") + "`"
	}
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

// rebind turns '?' placeholders (outside strings and identifiers) into $n
// on PostgreSQL, so that internal SQL is written once.
func (d Dialect) rebind(q string) string {
	if d != PostgreSQL {
		return q
	}
	var b strings.Builder
	n := 0
	last := 0
	for _, t := range tokenize(d, q) {
		if t.kind == tokPunct && t.text == "?" {
			n++
			b.WriteString(q[last:t.start])
			b.WriteString("$" + strconv.Itoa(n))
			last = t.end
		}
	}
	b.WriteString(q[last:])
	return b.String()
}

// queryer is what both *sql.DB, *sql.Conn and *sql.Tx offer.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// setLockTimeout makes DDL on conn give up waiting for a lock after d.
// The values are formatted integers, never user text.
func (d Dialect) setLockTimeout(ctx context.Context, c *sql.Conn, t time.Duration) error {
	var q []string
	switch d {
	case PostgreSQL:
		q = []string{fmt.Sprintf("SET lock_timeout = %d", max(t.Milliseconds(), 1))}
	case MySQL:
		// Metadata locks (DDL) use lock_wait_timeout, InnoDB row locks
		// innodb_lock_wait_timeout; both are whole seconds, at least 1.
		s := max(int64((t+time.Second-1)/time.Second), 1)
		q = []string{
			fmt.Sprintf("SET SESSION lock_wait_timeout = %d", s),
			fmt.Sprintf("SET SESSION innodb_lock_wait_timeout = %d", s),
		}
	case SQLite:
		q = []string{fmt.Sprintf("PRAGMA busy_timeout = %d", max(t.Milliseconds(), 1))}
	}
	for _, s := range q {
		if _, err := c.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("migrate: set lock timeout: %w", err)
		}
	}
	return nil
}

// resetLockTimeout puts the session's defaults back before the connection
// returns to the pool, so that no application query inherits them.
func (d Dialect) resetLockTimeout(ctx context.Context, c *sql.Conn) error {
	var q []string
	switch d {
	case PostgreSQL:
		q = []string{"RESET lock_timeout"}
	case MySQL:
		q = []string{"SET SESSION lock_wait_timeout = DEFAULT", "SET SESSION innodb_lock_wait_timeout = DEFAULT"}
	case SQLite:
		q = nil // the pool's connections keep the DSN's busy_timeout; see ddl.go
	}
	for _, s := range q {
		if _, err := c.ExecContext(ctx, s); err != nil {
			return err
		}
	}
	return nil
}

// sqlStater is implemented by pgx's *pgconn.PgError and lib/pq's errors.
type sqlStater interface{ SQLState() string }

// coder is implemented by modernc.org/sqlite's *Error.
type coder interface{ Code() int }

// retryable reports whether err is a lock timeout, busy database or
// deadlock: the errors a retry after a pause can cure.
func (d Dialect) retryable(err error) bool {
	if err == nil {
		return false
	}
	switch d {
	case PostgreSQL:
		var s sqlStater
		if errors.As(err, &s) {
			switch s.SQLState() {
			case "55P03", "40P01", "40001": // lock_not_available, deadlock, serialization
				return true
			}
		}
	case MySQL:
		// go-sql-driver's *MySQLError carries the number only in a field and
		// in its message; match the message to stay driver-free.
		msg := err.Error()
		for _, n := range []string{"Error 1205", "Error 1213", "Error 3572"} {
			if strings.Contains(msg, n) {
				return true
			}
		}
	case SQLite:
		var c coder
		if errors.As(err, &c) {
			switch c.Code() & 0xff {
			case 5, 6: // SQLITE_BUSY, SQLITE_LOCKED
				return true
			}
		}
		msg := err.Error()
		return strings.Contains(msg, "database is locked") || strings.Contains(msg, "SQLITE_BUSY")
	}
	return false
}

// colInfo describes one column of a live table.
type colInfo struct {
	Name    string
	Type    string
	NotNull bool
	PK      bool
}

// columns reads a table's columns from the catalog, in ordinal order.
func (d Dialect) columns(ctx context.Context, q queryer, table string) ([]colInfo, error) {
	var rows *sql.Rows
	var err error
	switch d {
	case PostgreSQL:
		rows, err = q.QueryContext(ctx, `SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
			COALESCE((SELECT true FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary AND a.attnum = ANY(i.indkey)), false)
			FROM pg_attribute a WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, d.quote(table))
	case MySQL:
		rows, err = q.QueryContext(ctx, `SELECT COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE = 'NO', COLUMN_KEY = 'PRI'
			FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION`, table)
	case SQLite:
		rows, err = q.QueryContext(ctx, `SELECT name, type, "notnull" <> 0, pk > 0 FROM pragma_table_info(?) ORDER BY cid`, table)
	}
	if err != nil {
		return nil, fmt.Errorf("migrate: read columns of %q: %w", table, err)
	}
	defer rows.Close()
	var out []colInfo
	for rows.Next() {
		var c colInfo
		if err := rows.Scan(&c.Name, &c.Type, &c.NotNull, &c.PK); err != nil {
			return nil, fmt.Errorf("migrate: read columns of %q: %w", table, err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: read columns of %q: %w", table, err)
	}
	return out, nil
}

// indexExists reports whether an index (or, on PostgreSQL, any relation)
// of that name exists.
func (d Dialect) indexExists(ctx context.Context, q queryer, table, name string) (bool, error) {
	var n int
	var err error
	switch d {
	case PostgreSQL:
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM pg_class WHERE oid = to_regclass($1)`, d.quote(name)).Scan(&n)
	case MySQL:
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND INDEX_NAME = ?`, table, name).Scan(&n)
	case SQLite:
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = ?`, name).Scan(&n)
	}
	return n > 0, err
}

// tableExists reports whether a table exists.
func (d Dialect) tableExists(ctx context.Context, q queryer, table string) (bool, error) {
	var n int
	var err error
	switch d {
	case PostgreSQL:
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM pg_class WHERE oid = to_regclass($1)`, d.quote(table)).Scan(&n)
	case MySQL:
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?`, table).Scan(&n)
	case SQLite:
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, table).Scan(&n)
	}
	return n > 0, err
}

// constraintExists reports whether a named constraint exists on table.
func (d Dialect) constraintExists(ctx context.Context, q queryer, table, name string) (bool, error) {
	var n int
	var err error
	switch d {
	case PostgreSQL:
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2`, d.quote(table), name).Scan(&n)
	case MySQL:
		err = q.QueryRowContext(ctx, `SELECT count(*) FROM information_schema.TABLE_CONSTRAINTS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND CONSTRAINT_NAME = ?`, table, name).Scan(&n)
	default:
		return false, nil
	}
	return n > 0, err
}

// textType is the type of the state tables' text keys (MySQL needs a
// bounded length for a primary key).
func (d Dialect) textType() string {
	if d == MySQL {
		return "VARCHAR(191)"
	}
	return "TEXT"
}
