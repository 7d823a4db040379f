package migrate

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

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
	// Type is the SQL type as the dialect spells it, e.g. "text" or
	// "varchar(200)". Letters, digits, spaces, '_', '(', ')' and ',' only.
	Type string `yaml:"type"`
	// NotNull adds NOT NULL; AddColumn requires a Default with it.
	NotNull bool `yaml:"not_null"`
	// Default is a constant SQL literal ('x', 42, TRUE, NULL); empty means
	// no default. Computed values belong in a Transform's backfill.
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
	// Key is the integer primary-key column used for keyset batches; empty
	// means the table's primary key, which must be one integer column.
	Key  string          `yaml:"key"`
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

var opFactories = map[string]func() Operation{
	"create_table":    func() Operation { return &CreateTable{} },
	"add_column":      func() Operation { return &AddColumn{} },
	"create_index":    func() Operation { return &CreateIndex{} },
	"transform":       func() Operation { return &Transform{} },
	"rename_column":   func() Operation { return &RenameColumn{} },
	"change_type":     func() Operation { return &ChangeType{} },
	"set_not_null":    func() Operation { return &SetNotNull{} },
	"add_foreign_key": func() Operation { return &AddForeignKey{} },
	"drop_column":     func() Operation { return &DropColumn{} },
	"drop_table":      func() Operation { return &DropTable{} },
	"sql":             func() Operation { return &RawSQL{} },
}

// LoadFile reads a migration from a YAML or JSON file (JSON is read as
// YAML). Errors name the file, the operation index and the line.
func LoadFile(path string) (*Migration, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("migrate: read migration file: %w", err)
	}
	m, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// Parse decodes a migration from YAML or JSON:
//
//	name: split_name
//	version: "2.0.0"
//	operations:
//	  - add_column: {table: users, column: {name: email, type: text}}
//	  - rename_column: {table: users, from: login, to: username}
//
// Unknown keys are errors. Parse checks the shape only; Validate checks the
// content for a dialect.
func Parse(data []byte) (*Migration, error) {
	var doc struct {
		Name       string      `yaml:"name"`
		Version    string      `yaml:"version"`
		Operations []yaml.Node `yaml:"operations"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		return nil, &ValidationError{Reason: "decode: " + err.Error()}
	}
	m := &Migration{Name: doc.Name, Version: doc.Version}
	for i, n := range doc.Operations {
		path := fmt.Sprintf("operations[%d] (line %d)", i, n.Line)
		if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
			return nil, &ValidationError{Migration: m.Name, Path: path, Reason: "an operation is a mapping with exactly one key, its kind (e.g. add_column)"}
		}
		kind := n.Content[0].Value
		mk, ok := opFactories[kind]
		if !ok {
			return nil, &ValidationError{Migration: m.Name, Path: path, Reason: fmt.Sprintf("unknown operation kind %q", kind)}
		}
		op := mk()
		// Re-encode the body so that KnownFields applies to it too.
		body, err := yaml.Marshal(n.Content[1])
		if err != nil {
			return nil, &ValidationError{Migration: m.Name, Path: path, Reason: err.Error()}
		}
		od := yaml.NewDecoder(bytes.NewReader(body))
		od.KnownFields(true)
		if err := od.Decode(op); err != nil {
			return nil, &ValidationError{Migration: m.Name, Path: path + "." + kind, Reason: err.Error()}
		}
		m.Operations = append(m.Operations, deref(op))
	}
	return m, nil
}

func deref(op Operation) Operation {
	switch o := op.(type) {
	case *CreateTable:
		return *o
	case *AddColumn:
		return *o
	case *CreateIndex:
		return *o
	case *Transform:
		return *o
	case *RenameColumn:
		return *o
	case *ChangeType:
		return *o
	case *SetNotNull:
		return *o
	case *AddForeignKey:
		return *o
	case *DropColumn:
		return *o
	case *DropTable:
		return *o
	case *RawSQL:
		return *o
	}
	return op
}

var (
	nameRe  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,47}$`)
	typeRe  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_ (),\[\]]*$`)
	identOK = func(s string) bool { return s != "" && len(s) <= 63 && !strings.ContainsRune(s, 0) }
)

// Validate checks m for dialect d: names, types, defaults, and the
// operations the dialect cannot do safely. Errors are *ValidationError
// (wrapping ErrInvalid) or wrap ErrUnsupported.
func (m *Migration) Validate(d Dialect) error {
	if !nameRe.MatchString(m.Name) {
		return &ValidationError{Path: "name", Reason: fmt.Sprintf("%q: want letters, digits and '_', starting with a letter or '_', at most 48 bytes", m.Name)}
	}
	if len(m.Operations) == 0 {
		return &ValidationError{Migration: m.Name, Path: "operations", Reason: "no operations"}
	}
	for i, op := range m.Operations {
		path := fmt.Sprintf("operations[%d].%s", i, op.Kind())
		if err := validateOp(d, op); err != nil {
			if ve, ok := err.(*ValidationError); ok {
				ve.Migration = m.Name
				ve.Path = path + ve.Path
				return ve
			}
			return fmt.Errorf("migrate: migration %q at %s: %w", m.Name, path, err)
		}
	}
	return nil
}

func verr(path, format string, args ...any) error {
	return &ValidationError{Path: path, Reason: fmt.Sprintf(format, args...)}
}

func checkIdent(path, s string) error {
	if !identOK(s) {
		return verr(path, "identifier %q: want 1 to 63 bytes", s)
	}
	return nil
}

func checkColumn(path string, c Column, adding bool) error {
	if err := checkIdent(path+".name", c.Name); err != nil {
		return err
	}
	if !typeRe.MatchString(c.Type) {
		return verr(path+".type", "type %q of column %q: want letters, digits, spaces, '_', '(', ')' and ','", c.Type, c.Name)
	}
	if c.Default != "" && !isConstant(c.Default) {
		return verr(path+".default", "default %q of column %q is not a constant literal; add the column nullable and compute values with a transform's backfill", c.Default, c.Name)
	}
	if adding && c.NotNull && c.Default == "" {
		return verr(path, "column %q is NOT NULL without a default: existing rows would fail; add it nullable, backfill, then SetNotNull", c.Name)
	}
	return nil
}

// isConstant reports whether s is one literal: a string, a number
// (optionally signed), TRUE, FALSE or NULL.
func isConstant(s string) bool {
	toks := tokenize(PostgreSQL, s)
	if len(toks) == 2 && toks[0].kind == tokPunct && (toks[0].text == "-" || toks[0].text == "+") && toks[1].kind == tokNumber {
		return true
	}
	if len(toks) != 1 {
		return false
	}
	switch toks[0].kind {
	case tokString, tokNumber:
		return true
	case tokIdent:
		switch toks[0].upper() {
		case "TRUE", "FALSE", "NULL":
			return true
		}
	}
	return false
}

func validateOp(d Dialect, op Operation) error {
	switch o := op.(type) {
	case CreateTable:
		if err := checkIdent(".table", o.Table); err != nil {
			return err
		}
		if len(o.Columns) == 0 {
			return verr(".columns", "table %q has no columns", o.Table)
		}
		pks := 0
		for i, c := range o.Columns {
			if err := checkColumn(fmt.Sprintf(".columns[%d]", i), c, false); err != nil {
				return err
			}
			if c.PrimaryKey {
				pks++
			}
		}
		if pks > 1 {
			return verr(".columns", "table %q: at most one column may be primary_key", o.Table)
		}
	case AddColumn:
		if err := checkIdent(".table", o.Table); err != nil {
			return err
		}
		return checkColumn(".column", o.Column, true)
	case CreateIndex:
		if err := checkIdent(".table", o.Table); err != nil {
			return err
		}
		if err := checkIdent(".name", o.Name); err != nil {
			return err
		}
		if len(o.Columns) == 0 {
			return verr(".columns", "index %q has no columns", o.Name)
		}
		for i, c := range o.Columns {
			if err := checkIdent(fmt.Sprintf(".columns[%d]", i), c); err != nil {
				return err
			}
		}
	case Transform:
		return validateTransform(d, o)
	case RenameColumn:
		for p, s := range map[string]string{".table": o.Table, ".from": o.From, ".to": o.To} {
			if err := checkIdent(p, s); err != nil {
				return err
			}
		}
		if o.From == o.To {
			return verr(".to", "from and to are both %q", o.From)
		}
		if o.Type != "" && !typeRe.MatchString(o.Type) {
			return verr(".type", "type %q: want letters, digits, spaces, '_', '(', ')' and ','", o.Type)
		}
	case ChangeType:
		for p, s := range map[string]string{".table": o.Table, ".column": o.Column, ".to": o.To} {
			if err := checkIdent(p, s); err != nil {
				return err
			}
		}
		if !typeRe.MatchString(o.Type) {
			return verr(".type", "type %q: want letters, digits, spaces, '_', '(', ')' and ','", o.Type)
		}
	case SetNotNull:
		if d == SQLite {
			return fmt.Errorf("%w: SQLite cannot add NOT NULL to an existing column without rebuilding the table", ErrUnsupported)
		}
		if err := checkIdent(".table", o.Table); err != nil {
			return err
		}
		return checkIdent(".column", o.Column)
	case AddForeignKey:
		if d == SQLite {
			return fmt.Errorf("%w: SQLite cannot add a foreign key to an existing table", ErrUnsupported)
		}
		for p, s := range map[string]string{".table": o.Table, ".name": o.Name, ".ref_table": o.RefTable} {
			if err := checkIdent(p, s); err != nil {
				return err
			}
		}
		if len(o.Columns) == 0 || len(o.Columns) != len(o.RefColumns) {
			return verr(".columns", "foreign key %q: want as many columns as ref_columns, at least one", o.Name)
		}
	case DropColumn:
		if err := checkIdent(".table", o.Table); err != nil {
			return err
		}
		return checkIdent(".column", o.Column)
	case DropTable:
		return checkIdent(".table", o.Table)
	case RawSQL:
		if strings.TrimSpace(o.Up) == "" {
			return verr(".up", "empty SQL")
		}
	default:
		return verr("", "unknown operation type %T", op)
	}
	return nil
}

func validateTransform(d Dialect, o Transform) error {
	if err := checkIdent(".table", o.Table); err != nil {
		return err
	}
	if o.Sync != SyncTriggers && o.Sync != SyncApplication {
		return verr(".sync", "unknown sync mode %q (want \"\" for triggers or %q)", o.Sync, SyncApplication)
	}
	if len(o.Add) == 0 {
		return verr(".add", "no new columns")
	}
	for i, c := range o.Add {
		if err := checkColumn(fmt.Sprintf(".add[%d]", i), c, true); err != nil {
			return err
		}
		if c.NotNull || c.Default != "" {
			return verr(fmt.Sprintf(".add[%d]", i), "column %q: new columns of a transform are nullable without default (NULL marks rows not yet backfilled); use SetNotNull afterwards", c.Name)
		}
		if o.Up[c.Name].For(d) == "" {
			return verr(".up", "no expression for new column %q", c.Name)
		}
	}
	if len(o.Up) != len(o.Add) {
		return verr(".up", "want one expression per new column (%d), have %d", len(o.Add), len(o.Up))
	}
	if len(o.Down) == 0 {
		return verr(".down", "no expression for the old columns: old code would read stale values written by new code")
	}
	for col, e := range o.Down {
		if err := checkIdent(".down", col); err != nil {
			return err
		}
		if e.For(d) == "" {
			return verr(".down", "empty expression for old column %q", col)
		}
	}
	for i, c := range o.Drop {
		if _, ok := o.Down[c]; !ok {
			return verr(fmt.Sprintf(".drop[%d]", i), "column %q is dropped but has no down expression", c)
		}
	}
	return nil
}
