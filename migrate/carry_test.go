package migrate_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/batonhq/baton/migrate"
)

// TestForeignKeyAndCheckCarried: a renamed column's foreign key (and, on
// PostgreSQL, a retyped column's CHECK) holds for the new column after
// Complete, under the old name where the dialect can rename it; Rollback
// leaves the schema as it was; a foreign key of another table that
// references a renamed column moves to the new column at Complete.
func TestForeignKeyAndCheckCarried(t *testing.T) {
	for _, d := range dialects() {
		if d == migrate.SQLite {
			continue // SQLite cannot add constraints to a table: Check refuses (TestValidate)
		}
		t.Run(d.String(), func(t *testing.T) {
			ctx := boundedCtx(t)
			db := openDB(t, d)
			sfx := suffix()
			parent, child, other, prefix := "mt_fkp_"+sfx, "mt_fkc_"+sfx, "mt_fko_"+sfx, "mt_fk_"+sfx+"_"
			dropAll(t, db, d, prefix, other, child, parent)
			t.Cleanup(func() { dropAll(t, db, d, prefix, other, child, parent) })
			check := ""
			if d == migrate.PostgreSQL {
				check = " CONSTRAINT " + child + "_amount_check CHECK (amount >= 0)"
			}
			for _, s := range []string{
				"CREATE TABLE " + qi(d, parent) + " (id INTEGER PRIMARY KEY)",
				"INSERT INTO " + qi(d, parent) + " (id) VALUES (1), (2)",
				"CREATE TABLE " + qi(d, child) + " (id INTEGER PRIMARY KEY, code VARCHAR(20) NOT NULL UNIQUE, owner_id INTEGER NOT NULL, amount INTEGER NOT NULL DEFAULT 0" + check +
					", CONSTRAINT " + child + "_owner_fk FOREIGN KEY (owner_id) REFERENCES " + qi(d, parent) + " (id))",
				"INSERT INTO " + qi(d, child) + " (id, code, owner_id, amount) VALUES (1, 'a', 1, 5), (2, 'b', 2, 7)",
				"CREATE TABLE " + qi(d, other) + " (id INTEGER PRIMARY KEY, code VARCHAR(20), FOREIGN KEY (code) REFERENCES " + qi(d, child) + " (code))",
			} {
				if _, err := db.Exec(s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			ops := []migrate.Operation{migrate.RenameColumn{Table: child, From: "owner_id", To: "owner"}}
			if d == migrate.PostgreSQL {
				ops = append(ops, migrate.ChangeType{Table: child, Column: "amount", To: "amount_big", Type: "BIGINT"})
			}
			m := &migrate.Migration{Name: "mt_fk_" + sfx, Operations: ops}
			before := schemaOf(t, db, d, child)
			r, err := migrate.New(db, m, migrate.Options{StateTablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []func() error{func() error { return r.Start(ctx) }, func() error { return r.Backfill(ctx) }, func() error { return r.Rollback(ctx) }} {
				if err := f(); err != nil {
					t.Fatal(err)
				}
			}
			if got := schemaOf(t, db, d, child); got != before {
				t.Fatalf("schema after Rollback:\n%s\nwant:\n%s", got, before)
			}
			if err := r.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec("INSERT INTO " + qi(d, child) + " (id, code, owner) VALUES (3, 'c', 999)"); err == nil {
				t.Error("a row whose owner has no parent was accepted: the foreign key was not carried")
			}
			if d == migrate.PostgreSQL {
				if _, err := db.Exec("INSERT INTO " + qi(d, child) + " (id, code, owner, amount_big) VALUES (4, 'd', 1, -1)"); err == nil {
					t.Error("a negative amount_big was accepted: the CHECK was not carried")
				}
				s := schemaOf(t, db, d, child)
				for _, name := range []string{child + "_owner_fk", child + "_amount_check"} {
					if !strings.Contains(s, name+" ") {
						t.Errorf("constraint %s not under its old name:\n%s", name, s)
					}
				}
			}
			// A reference from another table to the renamed column moves
			// with it, under its own name.
			m = &migrate.Migration{Name: "mt_fk2_" + sfx, Operations: []migrate.Operation{migrate.RenameColumn{Table: child, From: "code", To: "label"}}}
			r, err = migrate.New(db, m, migrate.Options{StateTablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Run(ctx); err != nil {
				t.Fatalf("rename of a column another table references: %v", err)
			}
			if _, err := db.Exec("INSERT INTO " + qi(d, other) + " (id, code) VALUES (1, 'a')"); err != nil {
				t.Fatalf("a reference to an existing label refused: %v", err)
			}
			if _, err := db.Exec("INSERT INTO " + qi(d, other) + " (id, code) VALUES (2, 'nope')"); err == nil {
				t.Error("a reference to a missing label accepted: the other table's foreign key did not move")
			}
			if _, err := db.Exec("UPDATE " + qi(d, child) + " SET label = 'a2' WHERE label = 'a'"); err == nil {
				t.Error("a referenced label changed under its reference: the foreign key did not move")
			}
		})
	}
}

// TestKeptOldColumnGetsItsDefaultBack: a Transform that keeps its old
// column (empty Drop) gives it back, at Complete, the default and NOT NULL
// that Start moved into the triggers.
func TestKeptOldColumnGetsItsDefaultBack(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			ctx := boundedCtx(t)
			a, prefix, name := newAccounts(t, d, "bigint", "mt_kept", 50)
			m := &migrate.Migration{Name: name, Operations: []migrate.Operation{migrate.Transform{Table: a.table,
				Add: []migrate.Column{{Name: "cents", Type: "BIGINT"}},
				Up:  map[string]migrate.Expr{"cents": {SQL: "amount * 100"}}, Down: map[string]migrate.Expr{"amount": {SQL: "cents / 100"}}}}}
			r, err := migrate.New(a.db, m, migrate.Options{StateTablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Run(ctx); err != nil {
				t.Fatal(err)
			}
			if err := a.insert(ctx, []string{"login"}, "kept"); err != nil {
				t.Fatalf("insert without amount after Complete: %v", err)
			}
			var amount int64
			if err := a.db.QueryRow("SELECT amount FROM " + qi(d, a.table) + " WHERE login = 'kept'").Scan(&amount); err != nil || amount != 0 {
				t.Fatalf("amount of a row inserted without it: %d (%v), want the default 0", amount, err)
			}
			if err := a.insert(ctx, []string{"login", "amount"}, "null", nil); err == nil {
				t.Fatal("NULL amount accepted after Complete: NOT NULL not given back")
			}
		})
	}
}

// TestKeyCheckedBeforeAnyDDL: a table without a primary key is walked by
// its UNIQUE key of NOT NULL columns; a table with neither is refused by
// Start before anything changes (no column, phase still none), with a
// message saying what to add.
func TestKeyCheckedBeforeAnyDDL(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			ctx := boundedCtx(t)
			db := openDB(t, d)
			sfx := suffix()
			keyed, bare, prefix := "mt_uk_"+sfx, "mt_nk_"+sfx, "mt_k_"+sfx+"_"
			dropAll(t, db, d, prefix, keyed, bare)
			t.Cleanup(func() { dropAll(t, db, d, prefix, keyed, bare) })
			for _, s := range []string{
				"CREATE TABLE " + qi(d, keyed) + " (code VARCHAR(20) NOT NULL, n INTEGER NOT NULL, name VARCHAR(50))",
				"CREATE UNIQUE INDEX " + qi(d, keyed+"_k") + " ON " + qi(d, keyed) + " (code, n)",
				"INSERT INTO " + qi(d, keyed) + " (code, n, name) VALUES ('a', 1, 'x'), ('a', 2, 'y'), ('b', 1, 'z')",
				"CREATE TABLE " + qi(d, bare) + " (code VARCHAR(20), name VARCHAR(50))",
			} {
				if _, err := db.Exec(s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			m := &migrate.Migration{Name: "mt_uk_" + sfx, Operations: []migrate.Operation{migrate.RenameColumn{Table: keyed, From: "name", To: "label"}}}
			r, err := migrate.New(db, m, migrate.Options{StateTablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Run(ctx); err != nil {
				t.Fatalf("rename on a UNIQUE NOT NULL key: %v", err)
			}
			var label string
			if err := db.QueryRow("SELECT label FROM " + qi(d, keyed) + " WHERE code = 'b'").Scan(&label); err != nil || label != "z" {
				t.Fatalf("label of ('b', 1): %q (%v)", label, err)
			}
			m = &migrate.Migration{Name: "mt_nk_" + sfx, Operations: []migrate.Operation{migrate.RenameColumn{Table: bare, From: "name", To: "label"}}}
			r, err = migrate.New(db, m, migrate.Options{StateTablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Check(ctx); !errors.Is(err, migrate.ErrUnsupported) || !strings.Contains(err.Error(), "no primary key") {
				t.Fatalf("Check on a table without a key: %v", err)
			}
			if err := r.Start(ctx); !errors.Is(err, migrate.ErrUnsupported) {
				t.Fatalf("Start on a table without a key: %v", err)
			}
			if p, _ := r.Phase(ctx); p != migrate.PhaseNone || hasColumn(t, db, d, bare, "label") {
				t.Fatalf("after the refused Start: phase %q, label added %v", p, hasColumn(t, db, d, bare, "label"))
			}
		})
	}
}

// TestSQLiteUniqueColumnRebuild: SQLite drops a column with its own UNIQUE
// constraint by rebuilding the table (the scenario tests run it); what a
// rebuild cannot keep is refused before any DDL: a UNIQUE constraint over
// several columns, and a table that another table references.
func TestSQLiteUniqueColumnRebuild(t *testing.T) {
	d := migrate.SQLite
	ctx := boundedCtx(t)
	db := openDB(t, d)
	for _, c := range []struct{ ddl []string }{
		{[]string{`CREATE TABLE multi (id INTEGER PRIMARY KEY, login TEXT NOT NULL, org TEXT, UNIQUE (login, org))`}},
		{[]string{`CREATE TABLE parent (id INTEGER PRIMARY KEY, login TEXT NOT NULL UNIQUE)`, `CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES parent (id))`}},
	} {
		for _, s := range c.ddl {
			if _, err := db.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, table := range []string{"multi", "parent"} {
		m := &migrate.Migration{Name: "m_" + table, Operations: []migrate.Operation{migrate.RenameColumn{Table: table, From: "login", To: "username"}}}
		r, err := migrate.New(db, m, migrate.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(ctx); !errors.Is(err, migrate.ErrUnsupported) || !strings.Contains(err.Error(), "UNIQUE") {
			t.Errorf("%s: Start %v, want ErrUnsupported naming the UNIQUE constraint", table, err)
		}
		if hasColumn(t, db, d, table, "username") {
			t.Errorf("%s: the refused Start added its column", table)
		}
	}
}
