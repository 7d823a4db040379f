package migrate_test

import (
	"database/sql"
	"testing"

	"github.com/batonhq/baton/migrate"
)

// TestConflictRule checks the dual-write rule documented in doc.go, one
// statement at a time, on each dialect.
func TestConflictRule(t *testing.T) {
	for _, d := range dialects() {
		t.Run(d.String(), func(t *testing.T) {
			db := openDB(t, d)
			const table, prefix = "mt_rule_users", "mt_rule_"
			dropAll(t, db, d, prefix, table)
			t.Cleanup(func() { dropAll(t, db, d, prefix, table) })
			if _, err := db.Exec(usersDDL(d, table)); err != nil {
				t.Fatal(err)
			}
			// Row 1 exists before the migration: not backfilled.
			if _, err := db.Exec("INSERT INTO " + qi(d, table) + " (id, name) VALUES (1, 'pre existing')"); err != nil {
				t.Fatal(err)
			}
			r, err := migrate.New(db, splitName(d, table, "mt_rule"), migrate.Options{StateTablePrefix: prefix})
			if err != nil {
				t.Fatal(err)
			}
			if err := r.Start(boundedCtx(t)); err != nil {
				t.Fatal(err)
			}
			tb := qi(d, table)
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.Exec(q, args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			row := func(id int) (name, first, last sql.NullString) {
				t.Helper()
				if err := db.QueryRow("SELECT name, first_name, last_name FROM "+tb+" WHERE id = "+ph(d, 1), id).Scan(&name, &first, &last); err != nil {
					t.Fatal(err)
				}
				return
			}
			want := func(step string, id int, name, first, last string) {
				t.Helper()
				n, f, l := row(id)
				if n.String != name || f.String != first || l.String != last || !n.Valid || !f.Valid || !l.Valid {
					t.Errorf("%s: row %d = (%v, %v, %v), want (%q, %q, %q)", step, id, n, f, l, name, first, last)
				}
			}

			// An update of another column on a row not yet backfilled derives the new side.
			exec("UPDATE " + tb + " SET email = 'x@y' WHERE id = 1")
			want("unrelated update, not backfilled", 1, "pre existing", "pre", "existing")

			exec("INSERT INTO " + tb + " (id, name) VALUES (2, 'old writer')")
			want("old insert", 2, "old writer", "old", "writer")

			exec("INSERT INTO " + tb + " (id, first_name, last_name) VALUES (3, 'new', 'writer')")
			want("new-only insert", 3, "new writer", "new", "writer")

			exec("INSERT INTO " + tb + " (id, name, first_name, last_name) VALUES (4, 'both sides', 'Both', 'Sides')")
			want("insert of both sides keeps both", 4, "both sides", "Both", "Sides")

			exec("UPDATE " + tb + " SET name = 'renamed by old' WHERE id = 2")
			want("old update", 2, "renamed by old", "renamed", "by old")

			exec("UPDATE " + tb + " SET first_name = 'Ada', last_name = 'Lovelace' WHERE id = 2")
			want("new update", 2, "Ada Lovelace", "Ada", "Lovelace")

			exec("UPDATE " + tb + " SET name = 'x y', first_name = 'X', last_name = 'Y' WHERE id = 2")
			want("update of both sides keeps both", 2, "x y", "X", "Y")

			// On a synced row an unrelated update changes nothing (the
			// trigger does not re-derive from the old side).
			exec("UPDATE " + tb + " SET email = 'z@z' WHERE id = 4")
			want("unrelated update, synced", 4, "both sides", "Both", "Sides")

			// Both sides changed, the new one partly: kept as written (the
			// writer set both, so it owns the consistency of the row).
			exec("UPDATE " + tb + " SET name = 'Ada Lovelace', first_name = 'Grace' WHERE id = 3")
			want("both sides changed, new side partly", 3, "Ada Lovelace", "Grace", "writer")

			// A no-op assignment of the old side is no change: an update of
			// the new side still derives the old one.
			exec("UPDATE " + tb + " SET name = name, first_name = 'Alan', last_name = 'Turing' WHERE id = 3")
			want("no-op old assignment", 3, "Alan Turing", "Alan", "Turing")
		})
	}
}
