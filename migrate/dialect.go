package migrate

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Dialect names the SQL spoken to the database. The zero value,
// DialectAuto, means: detect it from the database/sql driver.
type Dialect string

const (
	// DialectAuto (the zero value) detects the dialect from the driver's
	// type: pgx's stdlib driver or lib/pq → PostgreSQL,
	// go-sql-driver/mysql → MySQL, modernc.org/sqlite or
	// mattn/go-sqlite3 → SQLite.
	DialectAuto Dialect = ""
	// PostgreSQL 14 or later (CREATE OR REPLACE TRIGGER).
	PostgreSQL Dialect = "postgres"
	// MySQL 8.0.29 or later, or MariaDB 10.5 or later (CREATE TRIGGER IF
	// NOT EXISTS, ALGORITHM=INSTANT).
	MySQL Dialect = "mysql"
	// SQLite 3.35 or later.
	SQLite Dialect = "sqlite"
)

// String returns "postgres", "mysql" or "sqlite", the names ParseDialect
// accepts; DialectAuto (the zero value) is "auto".
func (d Dialect) String() string {
	if d == DialectAuto {
		return "auto"
	}
	return string(d)
}

// ParseDialect maps "postgres"/"postgresql"/"pgx", "mysql"/"mariadb" and
// "sqlite"/"sqlite3" to a Dialect.
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

// impl returns the implementation of d. Unknown dialects (Validate and New
// refuse them) get PostgreSQL's, so that pure helpers never panic.
func (d Dialect) impl() dialect {
	switch d {
	case MySQL:
		return mysqlDialect{}
	case SQLite:
		return sqliteDialect{}
	}
	return postgresDialect{}
}

func (d Dialect) known() bool { return d == PostgreSQL || d == MySQL || d == SQLite }

// quote quotes an identifier for d. Identifiers never reach SQL unquoted.
func (d Dialect) quote(s string) string { return d.impl().quote(s) }

// rebind turns '?' placeholders (outside strings and identifiers) into the
// dialect's own, so that internal SQL is written once.
func (d Dialect) rebind(q string) string {
	im := d.impl()
	if im.param(1) == "?" {
		return q
	}
	var b strings.Builder
	n, last := 0, 0
	for _, t := range lexTokens(im.lex(), q) {
		if t.kind == tokPunct && t.text == "?" {
			n++
			b.WriteString(q[last:t.start])
			b.WriteString(im.param(n))
			last = t.end
		}
	}
	b.WriteString(q[last:])
	return b.String()
}

// dialect is everything that differs between databases. Adding a database
// is one file implementing it. Methods that build SQL are pure; those that
// take a context read the catalog or run statements.
type dialect interface {
	// name is the public name of the dialect.
	name() Dialect
	quote(ident string) string
	// param is the n-th (1-based) bind placeholder.
	param(n int) string
	lex() lexRules
	caps() capabilities
	// nowMS is an SQL expression for the database's clock, in
	// milliseconds since the Unix epoch.
	nowMS() string
	// textType is the type of the state tables' text keys.
	textType() string
	// upsert inserts vals (SQL: placeholders or expressions) into cols of
	// table or, on a conflict on key, updates the columns in update.
	upsert(table string, cols, vals, key, update []string) string
	// extraStateDDL creates the state tables only this dialect needs.
	extraStateDDL(t tables) []string

	// lockTimeout makes statements on c give up waiting for a lock after
	// t; restore puts the session's previous setting back.
	lockTimeout(ctx context.Context, c *sql.Conn, t time.Duration) (restore func(context.Context) error, err error)
	// retryable reports a lock timeout, busy database or deadlock: what a
	// retry after a pause can cure.
	retryable(err error) bool

	// columns reads a table's columns in ordinal order (none: no table).
	columns(ctx context.Context, q queryer, table string) ([]colInfo, error)
	// indexes reads a table's indexes, the primary key's included.
	indexes(ctx context.Context, q queryer, table string) ([]indexInfo, error)
	// constraints reads the CHECK and FOREIGN KEY constraints that name
	// column col of table, in either direction.
	constraints(ctx context.Context, q queryer, table, col string) ([]constraintInfo, error)
	// columnDefs returns each column's stored definition text, for the
	// dialects whose catalog is that text (nil elsewhere).
	columnDefs(ctx context.Context, q queryer, table string) (map[string]string, error)
	// referencing lists the tables with a foreign key to table.
	referencing(ctx context.Context, q queryer, table string) ([]string, error)
	// carryConstraint returns the definition of k with column from
	// replaced by to, or false if the dialect cannot carry it.
	carryConstraint(k constraintInfo, from, to string) (string, bool)
	// dropColumn is the statement of a unit that drops col from table;
	// rebuild says the column has a UNIQUE constraint of its own, which
	// some dialects cannot drop in place.
	dropColumn(table, col string, rebuild bool) string
	// renameConstraint renames a constraint (nil: it keeps its name).
	renameConstraint(table, from, to string) []string
	tableExists(ctx context.Context, q queryer, table string) (bool, error)
	constraintExists(ctx context.Context, q queryer, table, name string) (bool, error)

	// session is the runner lock of this dialect.
	session(ctx context.Context, l *lockEnv) (held *heldLock, ok bool, err error)

	// alter returns the ALTER TABLE statements to try in order for one
	// clause (a later one when an earlier one is refused as not online).
	alter(table, clause string) []string
	// unit runs stmts as one unit that no concurrent statement on table
	// sees half done: one transaction where DDL is transactional, else
	// under a table write lock held only for the statements.
	unit(ctx context.Context, c *sql.Conn, table string, stmts []string) error
	createIndex(ctx context.Context, x ddlExec, ix CreateIndex) error
	// dropIndex drops an index online, or (inUnit) as a statement of a unit.
	dropIndex(table, name string, inUnit bool) string
	renameIndex(table, from, to string) []string
	columnAttrs(table string, c colInfo, set colAttrs) ([]string, error)

	// autoIncrement is what follows PRIMARY KEY for an integer key column.
	autoIncrement(typ string) string

	notNull() notNullSteps
	foreignKey() foreignKeySteps

	// distinct is "a and b differ", NULLs compared as values.
	distinct(a, b string) string
	// createTriggers returns the statements installing p's dual-write
	// triggers; name builds a trigger name from a suffix.
	createTriggers(name func(string) string, t tables, p *syncPlan) []string
	dropTriggers(name func(string) string, table string, tableExists bool) []string

	// backfillSession prepares the backfill's pinned connection; restore
	// undoes it (nil: the connection is discarded instead).
	backfillSession(ctx context.Context, c *sql.Conn) (restore func(context.Context) error, err error)
	// beginBatch starts one batch transaction.
	beginBatch(ctx context.Context, c *sql.Conn) (batchTx, error)
}

// batchTx is one backfill batch's transaction.
type batchTx interface {
	queryer
	Commit() error
	Rollback() error
}

// lexRules are the lexical rules of a dialect that the tokenizer needs.
type lexRules struct {
	hashComments     bool // # starts a comment
	escapeStrings    bool // E'...' with backslash escapes
	backslashEscapes bool // backslash escapes in every '...'
	dollarQuotes     bool // $tag$...$tag$
	backticks        bool // `ident`
	brackets         bool // [ident]
	caseSensitive    bool // quoted and folded names compare exactly
}

// capabilities are what the linter and the planner ask of a dialect.
type capabilities struct {
	concurrentIndex bool // CREATE INDEX CONCURRENTLY
	notValid        bool // ADD CONSTRAINT ... NOT VALID, then VALIDATE
	onlineClause    bool // ALGORITHM=... LOCK=NONE
	uniqueUsing     bool // ADD CONSTRAINT ... UNIQUE USING INDEX
	checkNotValid   bool // CHECK constraints can be added NOT VALID
	rowValues       bool // (a, b) > (x, y) uses the index
	setBased        bool // the backfill sets new columns itself, skipping the triggers
	lateNotNull     bool // NOT NULL is checked after BEFORE triggers ran
	comments        bool // columns have comments
	dropsUnique     bool // a column with a UNIQUE constraint can be dropped in place
	transactional   bool // DDL is transactional (a unit is a transaction)
	rebuildsUnique  bool // a column with a UNIQUE constraint is dropped by rebuilding the table
	volatile        []string
}

// notNullSteps is how SetNotNull (and a carried NOT NULL) is done: a
// NOT VALID check on Start, validated by Backfill, made a column property
// on Complete. A nil step does nothing.
type notNullSteps struct {
	supported bool
	// expand returns the statement adding the unvalidated check.
	expand func(table, col, check string) string
	// validate returns the statement validating it, or "" when the
	// runner must look for NULLs itself.
	validate func(table, check string) string
	// contract makes col NOT NULL (the column's type c.Type restated where
	// the dialect needs it) and drops the check.
	contract func(table, check string, c colInfo) ([]string, error)
	// rollback drops the check ("" when there is none).
	rollback func(table, check string) string
}

// foreignKeySteps is how AddForeignKey is done without a blocking scan.
type foreignKeySteps struct {
	supported bool
	// add runs the ADD CONSTRAINT (NOT VALID, or with checks off).
	add func(ctx context.Context, x ddlExec, table, name, def string) error
	// validate returns the VALIDATE statement, or "" when the runner
	// looks for orphans itself.
	validate func(table, name string) string
	drop     func(table, name string) string
}

// queryer is what *sql.DB, *sql.Conn and *sql.Tx offer.
type queryer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// ddlExec is what a dialect's multi-statement DDL needs from the runner.
type ddlExec interface {
	execDDL(ctx context.Context, stmt string, args ...any) error
	withDDLConn(ctx context.Context, desc string, fn func(context.Context, *sql.Conn) error) error
	catalog() queryer
}

// colInfo describes one column of a live table.
type colInfo struct {
	Name    string
	Type    string
	NotNull bool
	// PK is the column's 1-based position in the primary key, 0 if none.
	PK int
	// Default is the default's SQL text as the catalog gives it, "" if
	// none.
	Default string
	// Generated marks a computed column (GENERATED ALWAYS AS).
	Generated bool
	// Comment is the column comment ("" if none or not supported).
	Comment string
	// Def is the column's definition as the table's stored CREATE TABLE
	// text has it, where the dialect keeps one (SQLite; see columnDefs).
	Def string `json:",omitempty"`
}

// colAttrs is a change to a column's properties; nil fields are kept.
type colAttrs struct {
	Default *string // "" drops the default
	NotNull *bool
	Comment *string
	// Def replaces the whole stored definition (dialects that keep one).
	Def *string
}

// indexInfo describes one index of a live table.
type indexInfo struct {
	Name    string
	Columns []string
	Unique  bool
	Primary bool
	// Constraint marks an index that backs a UNIQUE constraint (PostgreSQL).
	Constraint bool
	// Plain is false for indexes on expressions, partial indexes and
	// prefix indexes, which the runner cannot rebuild on another column.
	Plain bool
}

// constraintInfo is a CHECK or FOREIGN KEY constraint that involves a
// column.
type constraintInfo struct {
	Name, Kind, Table, Def string
	// Incoming marks a foreign key of another table (or of this one)
	// that references the column.
	Incoming bool
	// FK describes a foreign key the column is part of (MySQL).
	FK AddForeignKey
}

// sqlStater is implemented by pgx's *pgconn.PgError and lib/pq's errors.
type sqlStater interface{ SQLState() string }

// coder is implemented by modernc.org/sqlite's *Error.
type coder interface{ Code() int }

// scanAll reads every row of a catalog query with scan; what and table
// name the query in errors.
func scanAll[T any](rows *sql.Rows, err error, what, table string, scan func(*sql.Rows) (T, error)) ([]T, error) {
	if err != nil {
		return nil, fmt.Errorf("migrate: read %s of %q: %w", what, table, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("migrate: read %s of %q: %w", what, table, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("migrate: read %s of %q: %w", what, table, err)
	}
	return out, nil
}

// scanColumns reads rows of (name, type, not null, pk position, default,
// generated, comment).
func scanColumns(rows *sql.Rows, table string, err error) ([]colInfo, error) {
	return scanAll(rows, err, "columns", table, func(rows *sql.Rows) (colInfo, error) {
		var c colInfo
		var def, comment sql.NullString
		err := rows.Scan(&c.Name, &c.Type, &c.NotNull, &c.PK, &def, &c.Generated, &comment)
		c.Default, c.Comment = def.String, comment.String
		return c, err
	})
}

// count runs a SELECT count(*) and reports whether it found any row.
func count(ctx context.Context, q queryer, query string, args ...any) (bool, error) {
	var n int
	err := q.QueryRowContext(ctx, query, args...).Scan(&n)
	return n > 0, err
}

// execAll runs statements in order on q.
func execAll(ctx context.Context, q queryer, stmts []string) error {
	for _, s := range stmts {
		if _, err := q.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("%w; statement: %s", err, oneLine(s))
		}
	}
	return nil
}

// quoteString quotes s as an SQL string literal with ” escapes (and, on
// dialects with backslash escapes, doubled backslashes).
func quoteString(lx lexRules, s string) string {
	if lx.backslashEscapes {
		s = strings.ReplaceAll(s, `\`, `\\`)
	}
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
