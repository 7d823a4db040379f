package migratetest_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/batonhq/baton/migrate"
	"github.com/batonhq/baton/migrate/migratetest"
)

// SplitName must split at the first space, keep a single word whole, and,
// while both versions run, write name back for rows that new code writes.
func TestSplitNameOnSQLite(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "t.db")+"?_pragma=busy_timeout(20000)")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec(`CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT)`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO people (id, name) VALUES (1, 'Ada Lovelace'), (2, 'Plato'), (3, 'Jean Paul Sartre')`); err != nil {
		t.Fatal(err)
	}
	ctx := bounded(t)
	r, err := migrate.New(db, migratetest.SplitName("people", "mt_split_people"), migrate.Options{StateTablePrefix: "mt_split_"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Backfill(ctx); err != nil {
		t.Fatal(err)
	}
	want := map[int][2]string{1: {"Ada", "Lovelace"}, 2: {"Plato", ""}, 3: {"Jean", "Paul Sartre"}}
	for id, w := range want {
		var first, last string
		if err := db.QueryRow(`SELECT first_name, last_name FROM people WHERE id = ?`, id).Scan(&first, &last); err != nil {
			t.Fatal(err)
		}
		if first != w[0] || last != w[1] {
			t.Errorf("row %d: %q %q, want %q %q", id, first, last, w[0], w[1])
		}
	}
	// New code writes only the new columns; old code still reads name.
	if _, err := db.Exec(`INSERT INTO people (id, first_name, last_name) VALUES (4, 'Alan', 'Turing'), (5, 'Homer', '')`); err != nil {
		t.Fatal(err)
	}
	for id, w := range map[int]string{4: "Alan Turing", 5: "Homer"} {
		var name string
		if err := db.QueryRow(`SELECT name FROM people WHERE id = ?`, id).Scan(&name); err != nil {
			t.Fatal(err)
		}
		if name != w {
			t.Errorf("row %d: name %q, want %q", id, name, w)
		}
	}
}
