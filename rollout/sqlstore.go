package rollout

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
)

// Dialect is the SQL dialect of a SQLStore. The zero value is invalid.
type Dialect string

// Supported dialects.
const (
	PostgreSQL Dialect = "postgres"
	MySQL      Dialect = "mysql" // MySQL and MariaDB
	SQLite     Dialect = "sqlite"
)

// DefaultTable is the table of a SQLStore when SQLStoreOptions.Table is
// empty.
const DefaultTable = "baton_rollout_state"

// SQLStoreOptions configure NewSQLStore. Dialect is required.
type SQLStoreOptions struct {
	// Dialect is the database's dialect (required: the zero value is
	// refused).
	Dialect Dialect
	// Table name: letters, digits and '_' (it is quoted, never taken
	// from a request). Empty means DefaultTable.
	Table string
}

// SQLStore is a Store in a database/sql table (PostgreSQL, MySQL/MariaDB,
// SQLite), for services whose instances share state or already own a
// database. Revisions are checked with a conditional UPDATE, so concurrent
// runners on several hosts do not overwrite each other. The caller opens
// the *sql.DB with its driver; this package imports none. Its zero value
// is not usable.
type SQLStore struct {
	db                  *sql.DB
	d                   Dialect
	qLoad, qIns, qUpd   string
	qExists, createStmt string
}

var tablePattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// NewSQLStore creates the table if it does not exist and returns the store.
func NewSQLStore(ctx context.Context, db *sql.DB, o SQLStoreOptions) (*SQLStore, error) {
	if db == nil {
		return nil, errors.New("rollout: NewSQLStore: nil *sql.DB")
	}
	if o.Table == "" {
		o.Table = DefaultTable
	}
	if !tablePattern.MatchString(o.Table) {
		return nil, fmt.Errorf("rollout: NewSQLStore: table name %q: use letters, digits and '_' (at most 63, not starting with a digit)", o.Table)
	}
	s := &SQLStore{db: db, d: o.Dialect}
	var t, text string
	switch o.Dialect {
	case PostgreSQL, SQLite:
		t, text = `"`+o.Table+`"`, "TEXT"
	case MySQL:
		t, text = "`"+o.Table+"`", "LONGTEXT"
	default:
		return nil, fmt.Errorf("rollout: NewSQLStore: unknown dialect %q (want %q, %q or %q)", o.Dialect, PostgreSQL, MySQL, SQLite)
	}
	s.createStmt = "CREATE TABLE IF NOT EXISTS " + t + " (id VARCHAR(128) NOT NULL PRIMARY KEY, revision BIGINT NOT NULL, data " + text + " NOT NULL)"
	s.qLoad = "SELECT data, revision FROM " + t + " WHERE id = " + s.ph(1)
	s.qIns = "INSERT INTO " + t + " (id, revision, data) VALUES (" + s.ph(1) + ", 1, " + s.ph(2) + ")"
	s.qUpd = "UPDATE " + t + " SET revision = revision + 1, data = " + s.ph(1) + " WHERE id = " + s.ph(2) + " AND revision = " + s.ph(3)
	s.qExists = "SELECT revision FROM " + t + " WHERE id = " + s.ph(1)
	if _, err := db.ExecContext(ctx, s.createStmt); err != nil {
		return nil, fmt.Errorf("rollout: creating table %s: %w", o.Table, err)
	}
	return s, nil
}

func (s *SQLStore) ph(i int) string {
	if s.d == PostgreSQL {
		return "$" + strconv.Itoa(i)
	}
	return "?"
}

// Load implements Store.
func (s *SQLStore) Load(ctx context.Context, id string) ([]byte, int64, error) {
	if err := ValidID(id); err != nil {
		return nil, 0, err
	}
	var data string
	var rev int64
	err := s.db.QueryRowContext(ctx, s.qLoad, id).Scan(&data, &rev)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("rollout: sql store: load %s: %w", id, err)
	}
	return []byte(data), rev, nil
}

// Save implements Store.
func (s *SQLStore) Save(ctx context.Context, id string, prev int64, data []byte) (int64, error) {
	if err := ValidID(id); err != nil {
		return 0, err
	}
	if prev == 0 {
		if _, err := s.db.ExecContext(ctx, s.qIns, id, string(data)); err != nil {
			// A duplicate key is a conflict; tell it from other failures by
			// looking, rather than by parsing each driver's error codes.
			var rev int64
			if qerr := s.db.QueryRowContext(ctx, s.qExists, id).Scan(&rev); qerr == nil {
				return 0, fmt.Errorf("%w: %s is at revision %d, the writer read 0", ErrConflict, id, rev)
			}
			return 0, fmt.Errorf("rollout: sql store: insert %s: %w", id, err)
		}
		return 1, nil
	}
	res, err := s.db.ExecContext(ctx, s.qUpd, string(data), id, prev)
	if err != nil {
		return 0, fmt.Errorf("rollout: sql store: update %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("rollout: sql store: update %s: %w", id, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("%w: %s is not at revision %d", ErrConflict, id, prev)
	}
	return prev + 1, nil
}
