package migrate

import "gopkg.in/yaml.v3"

// Migration is one expand-contract change: a name that identifies it in the
// state table, the application version that no longer needs the old schema,
// and the operations. The zero value is invalid (it has no name).
type Migration struct {
	// Name identifies the migration in the state table; letters, digits and
	// '_' only, at most 48 bytes (it is embedded in trigger names).
	Name string `yaml:"name" json:"name"`
	// Version is the application version whose code reads the new schema.
	// Complete refuses while a live instance reports an older version
	// (see Options.CompareVersions). Empty means Complete refuses while the
	// live instances do not all report one and the same version. Rollback
	// refuses while a live instance reports Version or a newer one; empty
	// means Rollback does not check.
	Version string `yaml:"version" json:"version"`
	// Operations run in order on Start (expand); contract steps run in order
	// on Complete; Rollback undoes the expand steps in reverse order.
	Operations []Operation `yaml:"-" json:"-"`
}

// Operation is one step of a migration. The concrete types are CreateTable,
// AddColumn, CreateIndex, Transform, RenameColumn, ChangeType, SetNotNull,
// AddForeignKey, DropColumn, DropTable and RawSQL.
type Operation interface {
	// Kind is the operation's key in migration files, e.g. "add_column".
	Kind() string
}

// Column describes a column to create. The zero Column is invalid (no name).
type Column struct {
	// Name of the column; always quoted in the generated SQL.
	Name string `yaml:"name"`
	// Type is the SQL type as the dialect spells it, e.g. "text",
	// "varchar(200)", "numeric(10, 2)", "text[]" or "int unsigned": a
	// name of one or more words, an optional (n) or (n, m), an optional []
	// and modifiers from a short list (unsigned, with/without time zone,
	// varying, precision, character set ... is not one). Nothing else is
	// accepted: a type never carries DDL.
	Type string `yaml:"type"`
	// NotNull adds NOT NULL; AddColumn requires a Default with it. On a
	// Transform's new column it is carried: checked after Backfill and
	// made a column property at Complete.
	NotNull bool `yaml:"not_null"`
	// Default is a constant SQL literal ('x', 42, -1.5, TRUE, FALSE,
	// NULL), read with the target dialect's lexical rules; empty means no
	// default. Computed values belong in a Transform's backfill. On a
	// Transform's new column it is set at Complete.
	Default string `yaml:"default"`
	// PrimaryKey marks the column as the (single-column) primary key in
	// CreateTable.
	PrimaryKey bool `yaml:"primary_key"`
}

// CreateTable creates a table in the expand phase (IF NOT EXISTS) and drops
// it on Rollback. All fields are required; the zero value is invalid.
type CreateTable struct {
	Table   string   `yaml:"table"`
	Columns []Column `yaml:"columns"`
}

// AddColumn adds a nullable column, or a NOT NULL one with a constant
// default, in the expand phase; Rollback drops it. Table and Column are
// required.
// The zero value is invalid: Validate rejects it.
type AddColumn struct {
	Table  string `yaml:"table"`
	Column Column `yaml:"column"`
}

// CreateIndex creates an index without blocking writes: CONCURRENTLY on
// PostgreSQL, ALGORITHM=INPLACE, LOCK=NONE on MySQL/MariaDB (SQLite has no
// online build: writers wait for it). A unique index built this way is the
// safe way to add a unique constraint. Table, Name and Columns are
// required; Unique false means a plain index. Rollback drops it.
// The zero value is invalid: Validate rejects it.
type CreateIndex struct {
	Table   string   `yaml:"table"`
	Name    string   `yaml:"name"`
	Columns []string `yaml:"columns"`
	Unique  bool     `yaml:"unique"`
}

// Expr is an SQL expression over the columns of one row, with optional
// per-dialect variants. Column references are bare names (quoted or not);
// the runner qualifies them (NEW."col" in triggers). As a file value it is
// either a string or a map with keys sql, postgres, mysql and sqlite.
// The zero Expr is no expression: For returns "" for every dialect, which
// ChangeType reads as "use a CAST" and Transform rejects.
type Expr struct {
	// SQL is used when the dialect has no variant below.
	SQL        string `yaml:"sql"`
	PostgreSQL string `yaml:"postgres"`
	MySQL      string `yaml:"mysql"`
	SQLite     string `yaml:"sqlite"`
}

// For returns the expression text for dialect d ("" if none).
func (e Expr) For(d Dialect) string {
	switch {
	case d == PostgreSQL && e.PostgreSQL != "":
		return e.PostgreSQL
	case d == MySQL && e.MySQL != "":
		return e.MySQL
	case d == SQLite && e.SQLite != "":
		return e.SQLite
	}
	return e.SQL
}

// UnmarshalYAML accepts a plain string or a mapping.
func (e *Expr) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		e.SQL = n.Value
		return nil
	}
	type plain Expr
	return n.Decode((*plain)(e))
}

// Transform is the general expand-contract pair: it adds the columns in Add
// (nullable), keeps them in sync with the columns they replace through
// triggers while old and new code write (Up derives each new column from
// the old ones, Down each old column from the new ones), backfills existing
// rows, and on Complete drops the columns in Drop. RenameColumn and
// ChangeType are Transforms. Table, Add, Up and Down are required; an empty
// Drop keeps the old columns after Complete.
// The zero value is invalid: Validate rejects it.
type Transform struct {
	Table string `yaml:"table"`
	// Key lists the columns the backfill walks in order (keyset batches):
	// the primary key or a UNIQUE key whose columns are all NOT NULL, of
	// any types. Empty means the primary key, or else the first such
	// UNIQUE key.
	Key  []string        `yaml:"key"`
	Add  []Column        `yaml:"add"`
	Up   map[string]Expr `yaml:"up"`
	Down map[string]Expr `yaml:"down"`
	// Drop lists the old columns dropped on Complete; they must be the keys
	// of Down.
	Drop []string `yaml:"drop"`
	// Sync chooses who keeps old and new columns equal while both exist.
	// Zero means SyncTriggers.
	Sync SyncMode `yaml:"sync"`
}

// SyncMode says how a Transform's old and new columns are kept in sync.
type SyncMode string

const (
	// SyncTriggers (the default, also the zero value) installs dual-write
	// triggers: old-version code that writes only the old columns keeps
	// working unchanged, which is what a rolling deploy needs.
	SyncTriggers SyncMode = ""
	// SyncApplication installs no trigger: the application writes both
	// sides itself (see Phase.WriteOld and Phase.WriteNew). It fits where
	// triggers are not allowed (managed MySQL without trigger privileges,
	// some proxies), at a price: every running version must already write
	// both sides before Backfill, so Backfill refuses, like Complete,
	// while an instance older than Migration.Version heartbeats; and after
	// SwitchReads the application writes only the new columns, so the old
	// ones must be nullable or defaulted.
	SyncApplication SyncMode = "application"
)

// RenameColumn renames a column the expand-contract way: To is added with
// From's type, both are kept equal, and From is dropped on Complete. Type
// overrides the type read from the catalog; empty reads it.
// The zero value is invalid: Validate rejects it.
type RenameColumn struct {
	Table string `yaml:"table"`
	From  string `yaml:"from"`
	To    string `yaml:"to"`
	Type  string `yaml:"type"`
	// Key is Transform.Key: empty means the primary key, or else the first
	// UNIQUE key of NOT NULL columns.
	Key []string `yaml:"key"`
}

// ChangeType changes a column's type the expand-contract way, through a new
// column To of type Type (there is no in-place type change without a table
// rewrite, and no view layer to hide the new name). Up converts the old
// value (empty: a CAST), Down converts back (empty: a CAST to the old
// type; MySQL's CAST knows few types, so give both there). Table, Column,
// To and Type are required.
// The zero value is invalid: Validate rejects it.
type ChangeType struct {
	Table  string `yaml:"table"`
	Column string `yaml:"column"`
	To     string `yaml:"to"`
	Type   string `yaml:"type"`
	Up     Expr   `yaml:"up"`
	Down   Expr   `yaml:"down"`
	// Key is Transform.Key: empty means the primary key, or else the first
	// UNIQUE key of NOT NULL columns.
	Key []string `yaml:"key"`
}

// SetNotNull makes a column NOT NULL without a long exclusive lock. On
// PostgreSQL: CHECK (col IS NOT NULL) NOT VALID on Start, VALIDATE during
// Backfill, SET NOT NULL (which then skips the scan) and drop of the check on
// Complete. On MySQL/MariaDB: MODIFY ... NOT NULL with ALGORITHM=INPLACE,
// LOCK=NONE on Complete. Not supported on SQLite (it would rebuild the
// table). Both fields are required; Rollback drops the check.
// The zero value is invalid: Validate rejects it.
type SetNotNull struct {
	Table  string `yaml:"table"`
	Column string `yaml:"column"`
}

// AddForeignKey adds a foreign key without blocking writes for the scan: on
// PostgreSQL NOT VALID on Start and VALIDATE during Backfill; on
// MySQL/MariaDB added with foreign_key_checks=0 and ALGORITHM=INPLACE,
// LOCK=NONE on Start, and existing rows checked during Backfill (the
// migration fails there, listing an orphan, if any row violates it). Not
// supported on SQLite. All fields are required; Rollback drops the key.
// The zero value is invalid: Validate rejects it.
type AddForeignKey struct {
	Table      string   `yaml:"table"`
	Name       string   `yaml:"name"`
	Columns    []string `yaml:"columns"`
	RefTable   string   `yaml:"ref_table"`
	RefColumns []string `yaml:"ref_columns"`
}

// DropColumn drops a column on Complete only (the contract phase), when no
// old code reads it. Both fields are required; Rollback does nothing.
// The zero value is invalid: Validate rejects it.
type DropColumn struct {
	Table  string `yaml:"table"`
	Column string `yaml:"column"`
}

// DropTable drops a table on Complete only. Table is required; Rollback
// does nothing.
// The zero value is invalid: Validate rejects it.
type DropTable struct {
	Table string `yaml:"table"`
}

// RawSQL runs statements as written (split at top-level semicolons, each
// with the lock timeout and retries of every DDL statement); Lint checks
// them. Up runs on Start, or on Complete when Contract is set; Down (empty:
// nothing) on Rollback. Up must be safe to run again after a crash (IF NOT
// EXISTS).
// The zero value is invalid (no Up): Validate rejects it.
type RawSQL struct {
	Up       string `yaml:"up"`
	Down     string `yaml:"down"`
	Contract bool   `yaml:"contract"`
}

// Kind returns "create_table", its name in migration files.
func (CreateTable) Kind() string { return "create_table" }

// Kind returns "add_column", its name in migration files.
func (AddColumn) Kind() string { return "add_column" }

// Kind returns "create_index", its name in migration files.
func (CreateIndex) Kind() string { return "create_index" }

// Kind returns "transform", its name in migration files.
func (Transform) Kind() string { return "transform" }

// Kind returns "rename_column", its name in migration files.
func (RenameColumn) Kind() string { return "rename_column" }

// Kind returns "change_type", its name in migration files.
func (ChangeType) Kind() string { return "change_type" }

// Kind returns "set_not_null", its name in migration files.
func (SetNotNull) Kind() string { return "set_not_null" }

// Kind returns "add_foreign_key", its name in migration files.
func (AddForeignKey) Kind() string { return "add_foreign_key" }

// Kind returns "drop_column", its name in migration files.
func (DropColumn) Kind() string { return "drop_column" }

// Kind returns "drop_table", its name in migration files.
func (DropTable) Kind() string { return "drop_table" }

// Kind returns "sql", its name in migration files.
func (RawSQL) Kind() string { return "sql" }
