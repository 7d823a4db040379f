package migrate_test

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"testing"

	"github.com/batonhq/baton/migrate"
)

// Hostile migration values must be refused before any DDL runs: a column
// named secret must survive each of them.

func secretTable(t *testing.T, d migrate.Dialect) (*sql.DB, string, string) {
	t.Helper()
	db := openDB(t, d)
	sfx := suffix()
	table, prefix := "mt_hd_"+sfx, "mt_hd_"+sfx+"_"
	dropAll(t, db, d, prefix, table)
	t.Cleanup(func() { dropAll(t, db, d, prefix, table) })
	if _, err := db.Exec("CREATE TABLE " + qi(d, table) + " (id INTEGER PRIMARY KEY, name VARCHAR(50), secret VARCHAR(50))"); err != nil {
		t.Fatal(err)
	}
	return db, table, prefix
}

// runHostile builds a runner for m and tries Start; it must fail before
// any DDL, leaving secret (and no new column) in place.
func runHostile(t *testing.T, d migrate.Dialect, db *sql.DB, table, prefix string, m *migrate.Migration, newCol string) error {
	t.Helper()
	r, err := migrate.New(db, m, migrate.Options{StateTablePrefix: prefix, LintMode: migrate.LintRefuse})
	if err == nil {
		err = r.Start(context.Background())
	}
	if !hasColumn(t, db, d, table, "secret") {
		t.Fatalf("column secret was dropped (error %v)", err)
	}
	if newCol != "" && hasColumn(t, db, d, table, newCol) {
		t.Fatalf("column %s was added although the migration was refused (error %v)", newCol, err)
	}
	return err
}

func TestColumnTypeCannotCarryDDL(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db, table, prefix := secretTable(t, d)
			for _, typ := range []string{"text, DROP COLUMN secret", "VARCHAR(20), DROP COLUMN secret", "int; DROP TABLE x", "text DEFAULT 'x'", "timestamp DEFAULT CURRENT_TIMESTAMP", "int NOT NULL", "int /* x */"} {
				m := &migrate.Migration{Name: "mt_hd_type", Operations: []migrate.Operation{
					migrate.AddColumn{Table: table, Column: migrate.Column{Name: "extra", Type: typ}}}}
				err := runHostile(t, d, db, table, prefix, m, "extra")
				if !errors.Is(err, migrate.ErrInvalid) || !strings.Contains(err.Error(), "type") {
					t.Errorf("type %q: %v, want a refusal naming the type", typ, err)
				}
			}
			for _, typ := range []string{"text", "VARCHAR(200)", "numeric(10, 2)", "double precision", "timestamp with time zone", "int unsigned", "text[]", "character varying(20)"} {
				m := &migrate.Migration{Name: "mt_hd_ok", Operations: []migrate.Operation{migrate.AddColumn{Table: table, Column: migrate.Column{Name: "x", Type: typ}}}}
				if err := m.Validate(d); err != nil {
					t.Errorf("type %q refused: %v", typ, err)
				}
			}
		})
	}
}

// TestVolatileDefaultInTypeOrDefault: clock_timestamp() is caught by the
// constant-default check and by the lint, whether it comes as the default
// or hidden in the type.
func TestVolatileDefaultInTypeOrDefault(t *testing.T) {
	for _, c := range []migrate.Column{
		{Name: "at", Type: "timestamptz DEFAULT clock_timestamp()"},
		{Name: "at", Type: "timestamptz", Default: "clock_timestamp()"},
	} {
		m := &migrate.Migration{Name: "m", Operations: []migrate.Operation{migrate.AddColumn{Table: "t", Column: c}}}
		if err := m.Validate(migrate.PostgreSQL); !errors.Is(err, migrate.ErrInvalid) {
			t.Errorf("%+v: Validate %v, want ErrInvalid", c, err)
		}
		found := false
		for _, f := range migrate.Lint(m, migrate.PostgreSQL) {
			found = found || f.Name == "volatile-default"
		}
		if !found {
			t.Errorf("%+v: Lint found no volatile-default", c)
		}
	}
}

// TestDefaultTokenizedWithTargetDialect: a default that is one string to
// PostgreSQL's lexer but a string, a comma and DDL to MySQL's must be
// refused for MySQL; accepted constants are re-emitted from their value.
func TestDefaultTokenizedWithTargetDialect(t *testing.T) {
	hostile := `'\'' , DROP COLUMN secret #'`
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db, table, prefix := secretTable(t, d)
			m := &migrate.Migration{Name: "mt_hd_dflt", Operations: []migrate.Operation{
				migrate.AddColumn{Table: table, Column: migrate.Column{Name: "extra", Type: "VARCHAR(50)", Default: hostile}}}}
			if err := runHostile(t, d, db, table, prefix, m, "extra"); !errors.Is(err, migrate.ErrInvalid) || !strings.Contains(err.Error(), "default") {
				t.Fatalf("default %q: %v, want a refusal naming the default", hostile, err)
			}
			m = &migrate.Migration{Name: "mt_hd_dflt2", Operations: []migrate.Operation{
				migrate.AddColumn{Table: table, Column: migrate.Column{Name: "quoted", Type: "VARCHAR(50)", Default: `'it''s'`}}}}
			r, err := migrate.New(db, m, migrate.Options{StateTablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(context.Background()); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("INSERT INTO " + qi(d, table) + " (id) VALUES (1)"); err != nil {
				t.Fatal(err)
			}
			var v string
			if err := db.QueryRow("SELECT quoted FROM " + qi(d, table) + " WHERE id = 1").Scan(&v); err != nil || v != "it's" {
				t.Fatalf("default of quoted: %q (%v), want it's", v, err)
			}
		})
	}
	if err := (&migrate.Migration{Name: "m", Operations: []migrate.Operation{migrate.AddColumn{Table: "t", Column: migrate.Column{Name: "c", Type: "text", Default: hostile}}}}).Validate(migrate.MySQL); !errors.Is(err, migrate.ErrInvalid) {
		t.Fatalf("Validate for MySQL: %v, want ErrInvalid", err)
	}
}

// TestReservedQuoteInNameRefusedBeforeDDL: $baton$ delimits trigger
// bodies; a column or expression containing it is refused by Validate,
// before Start adds anything.
func TestReservedQuoteInNameRefusedBeforeDDL(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db, table, prefix := secretTable(t, d)
			for _, m := range []*migrate.Migration{
				{Name: "mt_hd_q1", Operations: []migrate.Operation{migrate.RenameColumn{Table: table, From: "name", To: "x$baton$y"}}},
				{Name: "mt_hd_q2", Operations: []migrate.Operation{migrate.Transform{Table: table, Add: []migrate.Column{{Name: "nm", Type: "VARCHAR(50)"}},
					Up: map[string]migrate.Expr{"nm": {SQL: "name || '$baton$'"}}, Down: map[string]migrate.Expr{"name": {SQL: "nm"}}}}},
			} {
				col := "x$baton$y"
				if m.Name == "mt_hd_q2" {
					col = "nm"
				}
				if err := runHostile(t, d, db, table, prefix, m, col); !errors.Is(err, migrate.ErrInvalid) || !strings.Contains(err.Error(), "$baton$") {
					t.Errorf("%s: %v, want a refusal naming $baton$", m.Name, err)
				}
			}
		})
	}
}
